"""Answers leave the request path here, and the service's process too.

`put` only appends the answer's plain values to a list (microseconds, on the event loop). A sender thread
hands what gathered to the record writer process (`agent.records.worker`) every 50 ms, pickled over a pipe;
that process masks, encodes and writes them in batches, and says which are written. A visitor never waits on
the database and never gets an error from it: while it is down, records wait in the writer process; once
RECORD_QUEUE_SIZE are waiting, new ones are dropped here, and counted.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

import structlog

from agent.records.served import Served
from agent.records.settings import RecordsSettings
from rag.logs import LoggingSettings

log = structlog.get_logger(__name__)

_SEND_EVERY = 0.25  # seconds: how long answers gather before they go to the writer process
_RESTART_PAUSE = 1.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    queued: int
    written: int
    dropped: int
    failures: int
    healthy: bool


class RecordWriter:
    def __init__(
        self,
        settings: RecordsSettings,
        logging: LoggingSettings,
        secrets: tuple[str, ...] = (),
        *,
        migrated: bool = True,
        healthy: bool = True,  # False: the database could not be reached at start
    ) -> None:
        self._start_message = ("start", settings, logging, secrets, migrated)
        self._limit = settings.record_queue_size
        self._outbox: list[Served] = []
        self._unwritten: set[str] = set()  # put here, not yet written by the writer process
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._closing = False
        self._flushing = False
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe = threading.Lock()  # one writer of the process's stdin at a time
        self._sender = threading.Thread(target=self._send_loop, name="records-sender", daemon=True)
        self._reader: threading.Thread | None = None
        self._written = 0
        self._dropped = 0
        self._failures = 0
        self._healthy = healthy

    def start(self) -> None:
        self._spawn()
        self._sender.start()

    def put(self, served: Served) -> bool:
        """Queues the answer's record; never blocks. False: too many are waiting, the record is dropped."""
        with self._changed:
            if len(self._unwritten) >= self._limit or self._closing:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.warning("records_dropped", dropped=self._dropped, waiting=len(self._unwritten))
                return False
            self._unwritten.add(served.answer_id)
            self._outbox.append(served)
        return True

    def unwritten(self, answer_id: str) -> bool:
        with self._changed:
            return answer_id in self._unwritten

    def wait_written(self, answer_id: str, timeout: float) -> bool:
        """Blocking: True once the answer's record is in the database (or was never queued here)."""
        self._flush_now()
        with self._changed:
            return self._changed.wait_for(lambda: answer_id not in self._unwritten, timeout)

    def flush(self, timeout: float) -> bool:
        """Blocking: True once every record queued so far is written (or refused by the database)."""
        self._flush_now()
        with self._changed:
            return self._changed.wait_for(lambda: not self._unwritten, timeout)

    @property
    def pid(self) -> int | None:
        """The record writer process's id (None before start)."""
        process = self._process
        return process.pid if process is not None else None

    def stats(self) -> WriterStats:
        with self._changed:
            return WriterStats(
                queued=len(self._unwritten),
                written=self._written,
                dropped=self._dropped,
                failures=self._failures,
                healthy=self._healthy,
            )

    def close(self, timeout: float = 5.0) -> None:
        """Lets the writer process write what is queued (for at most `timeout` seconds), then stops it;
        what is left is counted."""
        with self._changed:
            self._closing = True
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(timeout)
        self._send(("close", timeout))
        process = self._process
        if process is not None:
            try:
                process.wait(timeout + 2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdin is not None:
                process.stdin.close()
        if self._reader is not None:
            self._reader.join(2)
        with self._changed:
            left = len(self._unwritten)
        if left:
            log.warning("records_unwritten_at_stop", records=left)

    # -- the writer process ---------------------------------------------------------------------------

    def _flush_now(self) -> None:
        """Sends what is gathered, and asks the writer process to write without waiting for more."""
        with self._changed:
            self._flushing = True
        self._wake.set()

    def _spawn(self) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.records.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        with self._pipe:
            self._process = process
        self._send(self._start_message)
        self._reader = threading.Thread(
            target=self._read_loop, args=(process,), name="records-acks", daemon=True
        )
        self._reader.start()

    def _send(self, message: tuple[Any, ...]) -> bool:
        with self._pipe:
            process = self._process
            if process is None or process.stdin is None or process.stdin.closed:
                return False
            try:
                pickle.dump(message, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def _send_loop(self) -> None:
        while True:
            self._wake.wait(_SEND_EVERY)
            self._wake.clear()
            with self._changed:
                batch, self._outbox = self._outbox, []
                closing, flushing, self._flushing = self._closing, self._flushing, False
            if batch and not self._send(("records", batch)):
                self._lost(batch, "the record writer process is not running")
            if flushing:
                self._send(("flush",))
            if closing:
                return

    def _read_loop(self, process: subprocess.Popen[bytes]) -> None:
        stdout: IO[bytes] | None = process.stdout
        assert stdout is not None
        while True:
            try:
                message = pickle.load(stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            self._acknowledged(message)
        with self._changed:
            closing = self._closing
        if closing:
            return
        # The writer process died: what it held is lost; a new one takes the next records.
        code = process.wait()
        with self._changed:
            # Those still gathering here go to the next process; the rest went down with this one.
            gathering = {served.answer_id for served in self._outbox}
            gone = self._unwritten - gathering
            lost = len(gone)
            self._dropped += lost
            self._unwritten -= gone
            self._healthy = False
            self._changed.notify_all()
        log.error("records_writer_died", exit_code=code, records_lost=lost)
        time.sleep(_RESTART_PAUSE)
        self._spawn()

    def _acknowledged(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        with self._changed:
            if kind == "written":
                self._written += len(message[1])
                self._unwritten.difference_update(message[1])
                self._healthy = True
            elif kind == "dropped":
                self._dropped += len(message[1])
                self._unwritten.difference_update(message[1])
            elif kind == "health":
                self._healthy = bool(message[1])
                if not self._healthy:
                    self._failures += 1
            self._changed.notify_all()

    def _lost(self, batch: list[Served], why: str) -> None:
        with self._changed:
            self._dropped += len(batch)
            self._unwritten.difference_update(served.answer_id for served in batch)
            self._changed.notify_all()
        log.error("records_lost", records=len(batch), reason=why)
