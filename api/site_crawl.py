"""The owner's website (KNOWLEDGE_URLS) crawled for the service: in a worker process, a replica at a time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from api.settings import Settings
from rag.crawl.snapshot import site_snapshot_dir

if TYPE_CHECKING:  # the crawler is imported when a crawl runs, not by every start
    from rag.crawl.crawler import CrawlProgress, CrawlReport


class SiteCrawler:
    """Crawls into the snapshot folder through a `CrawlWorker`, under `guard` (the cluster's ingest lock
    when replicas share a Chroma server): a replica that waited for another's crawl finds a scheduled one
    no longer due."""

    def __init__(self, settings: Settings, guard: Callable[[], AbstractContextManager[object]]) -> None:
        from rag.crawl.worker import CrawlWorker

        self.urls = settings.rag.knowledge_url_list
        self.folder = site_snapshot_dir(settings.rag)
        self.interval = settings.rag.crawl_interval
        self._guard = guard
        self._worker = CrawlWorker(settings.rag, settings.logging)

    def crawl(self, progress: Callable[[CrawlProgress], None], scheduled: bool) -> CrawlReport | None:
        from rag.crawl.schedule import is_due

        with self._guard():
            if scheduled and not is_due(self.folder, self.interval):
                return None
            return self._worker.run(self.urls, self.folder, progress)

    def stop(self) -> None:
        """End a crawl in progress (its snapshot stays as it was) and start no other."""
        self._worker.stop()
