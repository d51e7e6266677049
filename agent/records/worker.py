"""The record writer process: `python -m agent.records.worker`, started and fed by `RecordWriter`.

Writing records costs CPU (masking, encoding, the database driver), and in the service's process every
microsecond of it is taken from visitors' requests (the GIL). Here it runs beside them. Protocol, pickled
on stdin and stdout: first `("start", RecordsSettings, LoggingSettings, secrets, migrated)`, then
`("records", [Served, ...])`, `("flush",)` when someone waits for them, and finally `("close", seconds)`;
it answers `("written", ids)`, `("dropped", ids)` (refused by the database) and `("health", ok, error)`.
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError

from agent.records.repository import AnswerRecord, Records
from agent.records.served import record_of
from agent.records.settings import RecordsSettings

log = structlog.get_logger(__name__)

PURGE_EVERY = timedelta(days=1)
BACKOFF_MAX = 30.0
# Records gather this long before a transaction (unless a batch is full, or someone waits for them): one
# commit a second instead of one for every answer or two, and the process wakes rarely.
LINGER = 1.0
Message = tuple[Any, ...]


class RecordSink:
    """Writes batches of records and purges old ones; raises `SQLAlchemyError` when the database cannot be
    reached (the caller keeps the batch and tries again)."""

    def __init__(
        self,
        records: Records,
        settings: RecordsSettings,
        prepare: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.records = records
        self._prepare = prepare  # brings the schema up to date once the database answers
        self._retention = timedelta(days=settings.transcript_retention_days)
        self._clock = clock
        self._next_purge: datetime | None = None

    def write(self, batch: list[AnswerRecord]) -> list[str]:
        """Writes the batch; returns the ids of records the database refused (dropped, logged)."""
        self._prepare()
        try:
            try:
                self.records.add_answers(batch)
            except IntegrityError:
                # An earlier try was committed but its acknowledgement lost: write only what is missing.
                self.records.add_answers(batch, skip_existing=True)
        except DBAPIError as exc:
            if _unreachable(exc):
                raise
            # The database answered, and refused this batch's data: write its records one by one, so that
            # one the database cannot take is dropped (and counted) instead of holding up every other.
            return self._one_by_one(batch)
        return []

    def _one_by_one(self, batch: list[AnswerRecord]) -> list[str]:
        refused: list[str] = []
        for record in batch:
            try:
                self.records.add_answers([record], skip_existing=True)
            except DBAPIError as exc:
                if _unreachable(exc):
                    raise
                refused.append(record.id)
                log.error("record_refused", answer_id=record.id, error=str(exc.orig).splitlines()[0])
        return refused

    def purge_when_due(self) -> None:
        now = self._clock()
        if self._next_purge is not None and now < self._next_purge:
            return
        started = time.perf_counter()
        try:
            self._prepare()
            purged = self.records.purge(now - self._retention)
        except SQLAlchemyError as exc:
            log.warning("records_purge_failed", error=str(exc).splitlines()[0])
            self._next_purge = now + timedelta(minutes=5)
            return
        self._next_purge = now + PURGE_EVERY
        if purged:
            log.info("records_purged", answers=purged, seconds=round(time.perf_counter() - started, 3))


def _unreachable(exc: DBAPIError) -> bool:
    """The database could not be reached or went away (as opposed to refusing the data)."""
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def serve(
    inbox: queue.Queue[Message], send: Callable[[Message], None], sink: RecordSink, settings: RecordsSettings
) -> None:
    """The process's loop: records from `inbox` are written in batches; while the database cannot be reached
    they wait, tried again with a growing pause; once a day old records are purged. Returns after `close`,
    when everything is written or its time is up."""
    pending: deque[AnswerRecord] = deque()
    transcripts, batch_size = settings.store_transcripts, settings.record_batch_size
    healthy, pause, retry_at, first_at = True, 0.5, 0.0, 0.0
    closing_at: float | None = None
    while True:
        now = time.monotonic()
        # Written when due: a full batch, LINGER after the first waiting one, a flush asked for, or closing.
        due = (
            retry_at
            if len(pending) >= batch_size or closing_at is not None
            else max(retry_at, first_at + LINGER)
        )
        wait = 1.0 if not pending else max(0.0, due - now)
        if closing_at is not None:
            wait = min(wait, max(0.0, closing_at - now))
        try:
            message: Message | None = inbox.get(timeout=wait)
        except queue.Empty:
            message = None
        while message is not None:
            if message[0] == "records":
                if not pending:
                    first_at = time.monotonic()
                pending.extend(record_of(served, transcripts) for served in message[1])
            elif message[0] == "flush":
                first_at = -LINGER  # due now
            elif message[0] == "close":
                closing_at = time.monotonic() + float(message[1])
            try:
                message = inbox.get_nowait()
            except queue.Empty:
                message = None
        now = time.monotonic()
        ready = len(pending) >= batch_size or closing_at is not None or now >= first_at + LINGER
        while pending and ready and time.monotonic() >= retry_at:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            try:
                refused = sink.write(batch)
            except SQLAlchemyError as exc:
                pending.extendleft(reversed(batch))
                if healthy:
                    log.error("records_write_failed", error=str(exc).splitlines()[0], waiting=len(pending))
                    send(("health", False, str(exc).splitlines()[0]))
                healthy, retry_at, pause = False, time.monotonic() + pause, min(pause * 2, BACKOFF_MAX)
                break
            if not healthy:
                log.info("records_write_recovered")
                send(("health", True, None))
            healthy, pause = True, 0.5
            send(("written", [record.id for record in batch if record.id not in refused]))
            if refused:
                send(("dropped", refused))
        if closing_at is not None and (not pending or time.monotonic() >= closing_at):
            return
        if not pending:
            sink.purge_when_due()


def main() -> None:
    from agent.records.database import create_records_engine, migrate
    from rag.logs import configure_logging

    _yield_the_cores()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _, settings, logging_settings, secrets, migrated = pickle.load(stdin)
    configure_logging(logging_settings, secrets=secrets)
    records = Records(create_records_engine(settings))
    done = [migrated]

    def prepare() -> None:
        if not done[0]:
            migrate(records.engine)
            done[0] = True

    inbox: queue.Queue[Message] = queue.Queue()
    threading.Thread(target=_read, args=(stdin, inbox), name="records-inbox", daemon=True).start()
    lock = threading.Lock()

    def send(message: Message) -> None:
        with lock:
            pickle.dump(message, stdout, protocol=pickle.HIGHEST_PROTOCOL)
            stdout.flush()

    try:
        serve(inbox, send, RecordSink(records, settings, prepare), settings)
    finally:
        records.close()
    # The inbox thread may still be blocked reading stdin, holding its lock: the interpreter's own shutdown
    # would wait for that lock and abort ("could not acquire lock for <stdin>"). Everything is written.
    sys.stderr.flush()
    os._exit(0)


def _yield_the_cores() -> None:
    """Background work: the service's own threads (the embedding model's among them) get the cores first, and
    this process runs on what they leave (Linux's SCHED_IDLE; elsewhere the lowest nice). Measured on 2 cores,
    at normal priority its wake-ups delayed uncached answers (the model's threads wait for the slowest). A
    service saturated for longer than RECORD_QUEUE_SIZE lasts then drops records, counted, never answers."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def _read(stdin: IO[bytes], inbox: queue.Queue[Message]) -> None:
    while True:
        try:
            inbox.put(pickle.load(stdin))
        except (EOFError, OSError, pickle.UnpicklingError):
            inbox.put(("close", 5.0))  # the service went away: write what is here, then stop
            return


if __name__ == "__main__":
    main()
