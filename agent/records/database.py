"""The records' engine, and the migrations run at start.

SQLite (the embedded default) runs in WAL mode: the batch writer never blocks a reader such as an admin
report. Migrations run in one process at a time: replicas starting together on PostgreSQL wait on an
advisory lock; workers sharing a SQLite file wait on a file lock beside it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from agent.records.settings import RecordsSettings

log = structlog.get_logger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: the key of PostgreSQL's advisory lock that migrations take.
_MIGRATION_LOCK = 7_301_944_112


def create_records_engine(settings: RecordsSettings) -> Engine:
    url = make_url(settings.url())
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pool_pre_ping: a connection the server dropped (a restart) is replaced instead of failing a write.
    # connect_timeout: a host that drops packets fails a write (which is tried again) in seconds, not minutes.
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 5}
    )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it safe; only the last commits may go on a crash
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (blocking)."""
    with _one_at_a_time(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
        after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("records_migrated", before=before, after=after, database=engine.url.get_backend_name())


@contextmanager
def _one_at_a_time(engine: Engine) -> Iterator[Connection]:
    if engine.url.get_backend_name() == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
            try:
                yield connection
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
                connection.commit()
        return
    database = engine.url.database
    lock = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
    if lock is None:
        with engine.connect() as connection:
            yield connection
        return
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes, or the process dies
        with engine.connect() as connection:
            yield connection
