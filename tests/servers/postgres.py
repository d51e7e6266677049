"""A real, throwaway PostgreSQL server on a free 127.0.0.1 port: `initdb` into a temporary folder, then
`postgres` on it, with trust authentication and nothing synced to disk (the data only has to outlive a
restart of the server, not of the machine).

PostgreSQL refuses to run as root, and the tests run as root here and in CI: then `initdb` and `postgres` run
as an unprivileged user (`postgres`, which Debian's package creates, else `nobody`) that owns the folder.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import psycopg
import structlog
from psycopg import sql

from bench.server import free_port

log = structlog.get_logger(__name__)

# Where Debian's postgresql package puts the server programs: /usr/lib/postgresql/<major>/bin, not on PATH.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"  # the database role initdb creates; any OS user may log in as it (trust)
MISSING = (
    "PostgreSQL's server programs (initdb, postgres) are missing: run `make test`, which installs Debian's "
    "postgresql package, or apt-get install postgresql"
)
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Fast and small: a test server loses nothing it needs on a crash, and each test opens its own pools.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "max_wal_size": "256MB",
}


def find_bin_dir() -> Path:
    """The folder holding initdb and postgres: PATH's first, else Debian's newest version."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(DEBIAN_ROOT.glob("*/bin"), key=_version_key, reverse=True)
    candidates.extend(versions)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise RuntimeError(MISSING)


def _version_key(folder: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name)) or (0,)


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (the current user) unless that is root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("PostgreSQL refuses to run as root, and there is no `postgres` or `nobody` user")


class PostgresServer:
    """One PostgreSQL cluster in its own temporary folder. `start()` and `stop()` may alternate: the data
    directory and the port stay, so a restarted server serves the same databases at the same URLs."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.user = _server_user()
        self.host = "127.0.0.1"
        self.port = free_port()
        # Under the system's temp folder (world-traversable), not pytest's: the server's user must reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="kb-test-postgres-"))
        self.data_dir = self.folder / "data"
        self.socket_dir = self.folder  # short enough for a unix socket path
        self.log_path = self.folder / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Starts the server (initialising the cluster the first time) and waits until it takes queries.
        Does nothing when it is already running."""
        if self.running:
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._log = self.log_path.open("ab")
        command = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        command += ["-k", str(self.socket_dir)]
        for name, value in SERVER_SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, **self._as_server_user()
        )
        self._wait_until_ready(started)
        log.info("postgres_started", port=self.port, seconds=round(time.monotonic() - started, 2))
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open transactions are rolled back and clients disconnected at once."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()  # immediate shutdown: the next start recovers from the WAL
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> PostgresServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stops the server and removes its folder, data and all."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---- databases -------------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one database on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        """A plain psycopg connection (autocommit unless told otherwise); fails with OperationalError
        while the server is stopped."""
        options: dict[str, Any] = {"autocommit": True, "connect_timeout": 5, **kwargs}
        return psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, dbname=database, **options)

    def create_database(self, name: str) -> str:
        """Creates an empty database and returns its URL."""
        self._check_name(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drops a database, ending the sessions still connected to it."""
        self._check_name(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @staticmethod
    def _check_name(name: str) -> None:
        if not DATABASE_NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")

    # ---- internals -------------------------------------------------------------------------------------

    def _as_server_user(self) -> dict[str, Any]:
        """Popen arguments that run a program as the server's user, in its folder, in the C locale."""
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        options: dict[str, Any] = {"cwd": self.folder, "env": env}
        if self.user is not None:
            env["HOME"] = str(self.folder)
            env["USER"] = env["LOGNAME"] = self.user.pw_name
            options.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return options

    def _initdb(self) -> None:
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        command += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        result = subprocess.run(command, capture_output=True, check=False, **self._as_server_user())
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{output[-4000:]}")

    def _wait_until_ready(self, started: float) -> None:
        assert self.process is not None
        deadline = started + 60
        while True:
            try:
                with self.connect(connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:  # not listening yet, or "the database system is starting up"
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"postgres did not start on port {self.port}:\n{tail}")
            time.sleep(0.05)
