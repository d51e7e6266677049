"""Alembic's entry point. The service runs migrations at start (`agent.records.database.migrate`) on its own
connection; a developer writes a new one with
`alembic -c agent/records/alembic.ini revision --autogenerate -m "..."` (DATABASE_URL or the SQLite file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from agent.records.settings import RecordsSettings
from agent.records.tables import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters a table by copying it
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with create_engine(RecordsSettings().url()).connect() as conn:
        _run(conn)
