"""Incremental ingests, and crawls of the owner's website followed by one, run in the background on request,
one at a time, with their state kept for queries."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import structlog

from rag.ingestion import IngestReport, ProgressFactory

if TYPE_CHECKING:  # the crawler is imported where a crawl runs, not by every service start
    from rag.crawl.crawler import CrawlProgress, CrawlReport

log = structlog.get_logger(__name__)

JobStatus = Literal["running", "succeeded", "failed"]
JobKind = Literal["ingest", "crawl"]  # crawl: the website, then an ingest of what changed
# Crawls the site, reporting each URL; None when a scheduled crawl is not due after all (another replica
# crawled the shared snapshot meanwhile). Its argument says whether the schedule asked for it.
Crawl = Callable[[Callable[["CrawlProgress"], None], bool], "CrawlReport | None"]
# How often a running ingest writes a progress line to the log.
PROGRESS_LOG_SECONDS = 5.0


class SiteUnreachable(Exception):
    """A crawl read nothing of the website: the snapshot, and so the knowledge, stay as they were."""


@dataclass(frozen=True, slots=True)
class CrawlState:
    done: int = 0  # URLs finished
    queued: int = 0  # URLs waiting
    pages: int = 0  # pages saved or confirmed unchanged
    skipped: int = 0
    report: CrawlReport | None = None  # once the crawl ended
    not_due: bool = False  # a scheduled crawl found the site crawled recently (by another replica)


@dataclass(frozen=True, slots=True)
class ReindexJob:
    id: str
    status: JobStatus
    started_at: float
    kind: JobKind = "ingest"
    scheduled: bool = False  # started by CRAWL_INTERVAL, not by a request
    crawl: CrawlState | None = None
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
    """Runs `ingest` (after `crawl` for a crawl job) in a worker thread; a request while one runs gets the
    running job back."""

    def __init__(self, ingest: Callable[[ProgressFactory], IngestReport], crawl: Crawl | None = None) -> None:
        self._ingest = ingest
        self._crawl = crawl
        self._lock = threading.Lock()
        self._latest: ReindexJob | None = None

    @property
    def latest(self) -> ReindexJob | None:
        return self._latest

    @property
    def can_crawl(self) -> bool:
        return self._crawl is not None

    def start(self, kind: JobKind = "ingest", scheduled: bool = False) -> tuple[ReindexJob, bool]:
        """The job, and whether this call started it (False: one was already running)."""
        if kind == "crawl" and self._crawl is None:
            raise ValueError("nothing to crawl: KNOWLEDGE_URLS is not set")
        with self._lock:
            if self._latest is not None and self._latest.status == "running":
                return self._latest, False
            job = ReindexJob(
                id=uuid.uuid4().hex[:12],
                status="running",
                started_at=time.time(),
                kind=kind,
                scheduled=scheduled,
                crawl=CrawlState() if kind == "crawl" else None,
            )
            self._latest = job
        threading.Thread(target=self._run, args=(job,), name=f"reindex-{job.id}", daemon=True).start()
        log.info("reindex_started", job=job.id, kind=kind, scheduled=scheduled)
        return job, True

    def _run(self, job: ReindexJob) -> None:
        def on_change(total: int, done: int) -> None:
            self._update(job.id, to_embed=total, embedded=done)

        progress = _Progress(on_change=on_change)
        try:
            if job.kind == "crawl":
                self._crawl_site(job)
            report = self._ingest(progress)
        except Exception as exc:  # a background job must record any failure, not die with its thread
            log.exception("reindex_failed", job=job.id, kind=job.kind)
            error = f"{type(exc).__name__}: {exc}"
            self._update(job.id, status="failed", finished_at=time.time(), error=error)
            return
        self._update(job.id, status="succeeded", finished_at=time.time(), report=report)
        log.info("reindex_done", job=job.id, kind=job.kind, status=report.status, version=report.version)

    def _crawl_site(self, job: ReindexJob) -> None:
        assert self._crawl is not None
        last_log = time.monotonic()

        def on_url(step: CrawlProgress) -> None:
            nonlocal last_log
            state = CrawlState(step.done, step.queued, step.pages, step.skipped)
            self._update(job.id, crawl=state)
            if time.monotonic() - last_log >= PROGRESS_LOG_SECONDS:
                last_log = time.monotonic()
                log.info("crawl_progress", job=job.id, done=step.done, queued=step.queued, pages=step.pages)

        report = self._crawl(on_url, job.scheduled)
        if report is None:
            log.info("crawl_not_due", job=job.id, detail="the site was crawled recently (another replica)")
            self._update(job.id, crawl=CrawlState(not_due=True))
            return
        skipped = sum(report.skipped.values())
        done = report.pages + skipped
        self._update(job.id, crawl=CrawlState(done, 0, report.pages, skipped, report))
        if report.pages == 0 and not report.complete:
            # The site is down, or every start URL failed: the owner must see a failure, not a success.
            raise SiteUnreachable("no start URL or sitemap could be read (crawl.result.errors says why)")

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            if self._latest is not None and self._latest.id == job_id:
                self._latest = replace(self._latest, **changes)
