"""The crawled pages as knowledge files: what the ingestion reads beside the knowledge folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import structlog

from rag.crawl.snapshot import Snapshot
from rag.loading import SourceFile

log = structlog.get_logger(__name__)


def site_sources(folder: Path) -> list[SourceFile]:
    """The snapshot's pages, each named by its address and titled as the page is; none without a crawl.
    Hashed here from the files themselves, not taken from `pages.json`: a crawl that died after rewriting a
    page, before its record, leaves the two apart, and what is embedded must be what is on disk."""
    if not folder.is_dir():
        return []
    found: list[SourceFile] = []
    for url, record in sorted(Snapshot(folder).load().items()):
        path = folder / record.file
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:  # gone since pages.json was read: the next crawl settles it
            log.warning("site_page_skipped", source=url, reason=f"cannot be read: {exc.strerror}")
            continue
        found.append(SourceFile(path, record.file, digest, url=url, title=record.title or None))
    return found
