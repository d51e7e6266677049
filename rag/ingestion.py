"""Bring the store in line with the knowledge folder, embedding only when something changed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from rag.chunking import CHUNKER_VERSION, Chunk, chunk_document
from rag.embedder import Embedder
from rag.loading import UnreadableFile, load, scan
from rag.manifest import Manifest
from rag.settings import RagSettings
from rag.store import KnowledgeStore

log = structlog.get_logger(__name__)

# Called once with the total number of chunks to embed, then returns a per-batch callback.
ProgressFactory = Callable[[int], Callable[[int], None]]

_ingest_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class IngestReport:
    status: Literal["up_to_date", "built"]
    version: str
    files: int
    chunks: int
    seconds: float


def desired_manifest(settings: RagSettings) -> Manifest:
    """What the store should hold for the folder as it is now: costs one pass of hashing."""
    return Manifest(
        embedding_model=settings.embedding_model,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        chunker=CHUNKER_VERSION,
        files={f.relative: f.sha256 for f in scan(settings.knowledge_dir)},
    )


def ensure_ingested(
    store: KnowledgeStore,
    embedder: Embedder,
    settings: RagSettings,
    progress: ProgressFactory | None = None,
    force: bool = False,
) -> IngestReport:
    started = time.perf_counter()
    with _ingest_lock:
        wanted = desired_manifest(settings)
        active = store.refresh()
        if active is not None and active.manifest == wanted and not force:
            store.remove_stale()  # leftovers of an interrupted build, if any
            log.info(
                "knowledge_up_to_date",
                detail="store matches the knowledge folder; nothing to embed",
                version=wanted.version,
                files=len(wanted.files),
                chunks=store.count(),
            )
            return IngestReport(
                "up_to_date", wanted.version, len(wanted.files), store.count(), _since(started)
            )

        reason = "empty store" if active is None else "knowledge or embedding settings changed"
        chunks = _chunk_all(settings)
        log.info("knowledge_ingest_started", reason=reason, files=len(wanted.files), chunks=len(chunks))
        collection = store.begin_build(wanted)
        on_batch = progress(len(chunks)) if progress else None
        step = max(embedder.batch_size, 64)
        for start in range(0, len(chunks), step):
            batch = chunks[start : start + step]
            store.add(
                collection,
                ids=[c.id for c in batch],
                embeddings=embedder.embed([c.embedding_text() for c in batch], progress=on_batch),
                documents=[c.text for c in batch],
                metadatas=[_metadata(c) for c in batch],
            )
        store.complete_build(collection, wanted)
        report = IngestReport("built", wanted.version, len(wanted.files), len(chunks), _since(started))
        log.info(
            "knowledge_ingest_done", version=report.version, chunks=report.chunks, seconds=report.seconds
        )
        return report


def _chunk_all(settings: RagSettings) -> list[Chunk]:
    chunks: list[Chunk] = []
    for source in scan(settings.knowledge_dir):
        try:
            document = load(source)
        except UnreadableFile as exc:
            # One bad file must not keep the rest of the knowledge from being served.
            log.warning("knowledge_file_skipped", source=source.relative, reason=str(exc))
            continue
        chunks.extend(chunk_document(document, settings.chunk_size, settings.chunk_overlap))
    return chunks


def _metadata(chunk: Chunk) -> dict[str, str | int]:
    return {
        "source": chunk.source,
        "title": chunk.title,
        "headings": chunk.heading_path,
        "index": chunk.index,
    }


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
