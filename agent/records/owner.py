"""The owner's records, opened once at start: the repository, the batch writer and the curated answers."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.exc import SQLAlchemyError

from agent.records.curated import CuratedIndex
from agent.records.database import create_records_engine, migrate
from agent.records.repository import Records
from agent.records.settings import RecordsSettings
from agent.records.writer import RecordWriter
from rag.embedder import Embedder
from rag.logs import LoggingSettings

log = structlog.get_logger(__name__)


@dataclass
class OwnerRecords:
    settings: RecordsSettings
    records: Records
    writer: RecordWriter
    curated: CuratedIndex

    def close(self, timeout: float = 5.0) -> None:
        self.writer.close(timeout)
        self.records.close()


def open_records(
    settings: RecordsSettings, embedder: Embedder, logging: LoggingSettings, secrets: tuple[str, ...] = ()
) -> OwnerRecords:
    """Blocking. A database that cannot be reached now does not stop the service: answers are queued, and
    the writer process brings the schema up to date before it writes the first of them."""
    records = Records(create_records_engine(settings))
    curated = CuratedIndex(records, embedder.embed, embedder.embed_query, settings.curated_threshold)
    reachable = True
    try:
        migrate(records.engine)
        curated.refresh()
    except SQLAlchemyError as exc:
        reachable = False
        log.error("records_database_unavailable", error=str(exc).splitlines()[0])
    writer = RecordWriter(settings, logging, secrets, migrated=reachable, healthy=reachable)
    writer.start()
    return OwnerRecords(settings, records, writer, curated)
