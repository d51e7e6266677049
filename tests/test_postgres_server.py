"""The throwaway PostgreSQL server the database tests run on: real databases, each test its own, and a
server that can be stopped and started again with its data."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from tests.servers import postgres
from tests.servers.postgres import PostgresServer


def table_names(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_fresh_database_takes_a_table_and_a_row(postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg" and url.host == "127.0.0.1"
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)"))
            conn.execute(sqlalchemy.text("INSERT INTO notes (body) VALUES (:body)"), {"body": "héllo"})
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT id, body FROM notes")).all()
            assert [tuple(row) for row in rows] == [(1, "héllo")]
            assert conn.execute(sqlalchemy.text("SHOW server_encoding")).scalar() == "UTF8"
    finally:
        engine.dispose()


def test_each_test_gets_its_own_empty_database(postgres_server: PostgresServer, postgres_url: str) -> None:
    other = postgres_server.create_database("test_other_database")
    try:
        assert other != postgres_url
        engine = sqlalchemy.create_engine(postgres_url)
        try:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text("CREATE TABLE only_here (id int)"))
        finally:
            engine.dispose()
        assert table_names(postgres_url) == ["only_here"]
        assert table_names(other) == []  # a separate database, empty
    finally:
        postgres_server.drop_database("test_other_database")


def test_the_server_does_not_run_as_root(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        # The backend serving this session exists only while the session is open.
        assert os.stat(f"/proc/{conn.info.backend_pid}").st_uid != 0
    assert postgres_server.process is not None
    assert os.stat(f"/proc/{postgres_server.process.pid}").st_uid != 0  # the postmaster itself
    if os.geteuid() == 0:
        assert postgres_server.user is not None and postgres_server.user.pw_uid != 0


def test_stopped_server_refuses_connections_and_comes_back_with_its_data(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    engine = sqlalchemy.create_engine(postgres_url, pool_pre_ping=True)
    database = make_url(postgres_url).database
    assert database is not None
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE kept (value text)"))
            conn.execute(sqlalchemy.text("INSERT INTO kept VALUES ('before the stop')"))
        held = postgres_server.connect(database)  # a session open across the stop
        port = postgres_server.port

        postgres_server.stop()
        assert not postgres_server.running
        with pytest.raises(psycopg.OperationalError):
            postgres_server.connect(database)
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")  # fast shutdown ended it
        held.close()
        with pytest.raises(sqlalchemy.exc.OperationalError), engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))

        postgres_server.start()
        assert postgres_server.port == port and postgres_server.url(database) == postgres_url
        with engine.connect() as conn:  # the pool's dead connections are replaced
            values = conn.execute(sqlalchemy.text("SELECT value FROM kept")).scalars().all()
        assert values == ["before the stop"]
    finally:
        engine.dispose()
        postgres_server.start()  # the session's server stays up for the tests after this one


def test_close_removes_the_folder() -> None:
    with PostgresServer() as server:
        url = server.create_database("scratch")
        assert table_names(url) == []
        folder = server.folder
        assert (folder / "data" / "PG_VERSION").is_file()
    assert not server.running and not folder.exists()


def test_missing_binaries_fail_with_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "DEBIAN_ROOT", tmp_path / "no-postgresql")
    with pytest.raises(RuntimeError, match="make test"):
        PostgresServer()


def test_the_newest_debian_version_is_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for version in ("9.6", "15", "17", "100-beta"):
        folder = tmp_path / version / "bin"
        folder.mkdir(parents=True)
        if version != "100-beta":
            (folder / "initdb").touch()
            (folder / "postgres").touch()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(postgres, "DEBIAN_ROOT", tmp_path)
    assert postgres.find_bin_dir() == tmp_path / "17" / "bin"
