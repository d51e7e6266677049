"""Incremental ingests run in the background on request, one at a time, with their state kept for queries."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import structlog

from rag.ingestion import IngestReport, ProgressFactory

log = structlog.get_logger(__name__)

JobStatus = Literal["running", "succeeded", "failed"]
# How often a running ingest writes a progress line to the log.
PROGRESS_LOG_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ReindexJob:
    id: str
    status: JobStatus
    started_at: float
    finished_at: float | None = None
    to_embed: int = 0  # chunks this ingest has to embed (known once the folder is chunked)
    embedded: int = 0
    report: IngestReport | None = None
    error: str | None = None


@dataclass
class _Progress:
    """A `ProgressFactory` that logs every few seconds and tells the job how far it got."""

    on_change: Callable[[int, int], None] = field(default=lambda total, done: None)
    every: float = PROGRESS_LOG_SECONDS

    def __call__(self, total: int) -> Callable[[int], None]:
        done, last_log, started = 0, time.monotonic(), time.monotonic()
        self.on_change(total, 0)

        def advance(n: int) -> None:
            nonlocal done, last_log
            done += n
            self.on_change(total, done)
            now = time.monotonic()
            if now - last_log >= self.every or done >= total:
                last_log = now
                rate = done / max(now - started, 1e-6)
                log.info(
                    "knowledge_ingest_progress",
                    embedded=done,
                    total=total,
                    percent=round(100 * done / total, 1) if total else 100.0,
                    chunks_per_second=round(rate, 1),
                    eta_seconds=round((total - done) / rate, 1) if rate else None,
                )

        return advance


def logged_progress() -> ProgressFactory:
    return _Progress()


class Reindexer:
    """Runs `ingest` in a worker thread; a request while one runs gets the running job back."""

    def __init__(self, ingest: Callable[[ProgressFactory], IngestReport]) -> None:
        self._ingest = ingest
        self._lock = threading.Lock()
        self._latest: ReindexJob | None = None

    @property
    def latest(self) -> ReindexJob | None:
        return self._latest

    def start(self) -> tuple[ReindexJob, bool]:
        """The job, and whether this call started it (False: one was already running)."""
        with self._lock:
            if self._latest is not None and self._latest.status == "running":
                return self._latest, False
            job = ReindexJob(id=uuid.uuid4().hex[:12], status="running", started_at=time.time())
            self._latest = job
        threading.Thread(target=self._run, args=(job.id,), name=f"reindex-{job.id}", daemon=True).start()
        log.info("reindex_started", job=job.id)
        return job, True

    def _run(self, job_id: str) -> None:
        def on_change(total: int, done: int) -> None:
            self._update(job_id, to_embed=total, embedded=done)

        progress = _Progress(on_change=on_change)
        try:
            report = self._ingest(progress)
        except Exception as exc:  # a background job must record any failure, not die with its thread
            log.exception("reindex_failed", job=job_id)
            error = f"{type(exc).__name__}: {exc}"
            self._update(job_id, status="failed", finished_at=time.time(), error=error)
            return
        self._update(job_id, status="succeeded", finished_at=time.time(), report=report)
        log.info("reindex_done", job=job_id, status=report.status, version=report.version)

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            if self._latest is not None and self._latest.id == job_id:
                self._latest = replace(self._latest, **changes)
