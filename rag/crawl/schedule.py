"""CRAWL_INTERVAL: the website re-crawled, and what changed ingested, in the background.

When the next crawl is due is read from the snapshot folder (`crawl.json`: when the last crawl ended), not
kept in memory: a restart does not crawl again a site crawled an hour ago, a site never crawled is crawled
soon after the first start, and replicas sharing the folder (SITE_DIR) agree. Replicas' timers fire at about
the same moment; the crawl itself runs under the cluster's ingest lock, and the replica that gets it second
finds the site crawled (`not_due`) and crawls nothing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog

from rag.crawl.snapshot import Snapshot
from rag.reindex import Reindexer

log = structlog.get_logger(__name__)

POLL_SECONDS = 1.0  # how often a waiting schedule looks at the running job


def next_crawl_at(folder: Path, interval: float, last_attempt: float = 0.0) -> float:
    """When the next scheduled crawl is due (seconds since the epoch): `interval` after the last crawl of
    the folder, or after this process's last attempt, whichever is later (a crawl whose worker died records
    nothing, and must not be retried at once)."""
    last = Snapshot(folder).last_crawl() or 0.0
    return max(last, last_attempt) + interval


def is_due(folder: Path, interval: float) -> bool:
    return next_crawl_at(folder, interval) <= time.time()


async def keep_site_in_sync(reindexer: Reindexer, folder: Path, interval: float) -> None:
    """Run forever (cancel it to stop): a crawl job whenever one is due."""
    last_attempt = 0.0
    while True:
        due = await asyncio.to_thread(next_crawl_at, folder, interval, last_attempt)
        wait = due - time.time()
        if wait > 0:
            log.info("crawl_scheduled", in_seconds=round(wait), folder=str(folder))
            await asyncio.sleep(wait)
        job, started = reindexer.start("crawl", scheduled=True)
        if started:
            last_attempt = time.time()
        # An ingest or a requested crawl may be running: wait for it, then look again at what is due. The
        # job runs in a thread; looking once a second keeps this task cancellable at once at shutdown.
        while _running(reindexer, job.id):  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)


def _running(reindexer: Reindexer, job_id: str) -> bool:
    latest = reindexer.latest
    return latest is not None and latest.id == job_id and latest.status == "running"
