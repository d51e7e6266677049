"""Bring the store in line with the knowledge folder, embedding only what changed.

Every ingest that changes anything writes a new build (see `rag.store`) and switches to it when complete:
chunks of unchanged files are copied from the active build with their vectors, and new or changed files
are chunked; a chunk whose id (its exact text) is already in the active build, or in a build an earlier
ingest left unfinished, takes its vector from there. Only the rest is embedded. A change of the embedding
model or chunking parameters leaves nothing reusable and so rebuilds everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import structlog

from rag.chunking import CHUNKER_VERSION, Chunk, chunk_document
from rag.crawl.pages import site_sources
from rag.crawl.snapshot import site_snapshot_dir
from rag.embedder import Embedder, resolve_model_path
from rag.loading import ReadLimits, SourceFile, UnreadableFile, load, scan
from rag.manifest import FileEntry, Manifest
from rag.settings import RagSettings
from rag.store import Build, KnowledgeStore, Record, StoreWriter
from rag.tokens import TokenCounter, tokens_for

log = structlog.get_logger(__name__)

# Called once with the number of chunks to embed, then returns a callback taking each batch's size.
ProgressFactory = Callable[[int], Callable[[int], None]]

# Chunks embedded (then written) per group, in batches of the embedder's batch size. Chunks are sorted by
# length first, so batches hold texts of similar length and little padding.
_GROUP_BATCHES = 16


@dataclass(frozen=True, slots=True)
class IngestReport:
    status: Literal["up_to_date", "updated", "rebuilt"]
    version: str
    files: int
    chunks: int
    seconds: float
    embedded: int = 0  # chunks whose vectors were computed now
    reused: int = 0  # chunks whose vectors came from an earlier build
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files that gave no text


@dataclass(frozen=True, slots=True)
class Changes:
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    rebuild: bool  # nothing of the active build can be reused


def desired_manifest(settings: RagSettings) -> Manifest:
    """What the store should hold for the folder as it is now: costs one pass of hashing."""
    return _manifest(settings, knowledge_sources(settings))


def knowledge_sources(settings: RagSettings) -> list[SourceFile]:
    """The knowledge folder's files, then the pages of the owner's website that the last crawl kept."""
    return scan(settings.knowledge_dir) + site_sources(site_snapshot_dir(settings))


def desired_parameters(settings: RagSettings) -> Manifest:
    """The manifest's parameters for these settings, with no files (no hashing)."""
    return _manifest(settings, [])


def compare(active: Manifest | None, wanted: Manifest, force: bool = False) -> Changes:
    rebuild = force or active is None or active.parameters != wanted.parameters
    old = {} if rebuild or active is None else active.hashes
    new = wanted.hashes
    return Changes(
        added=sorted(p for p in new if p not in old),
        changed=sorted(p for p in new if p in old and old[p] != new[p]),
        removed=sorted(p for p in old if p not in new),
        unchanged=sorted(p for p in new if p in old and old[p] == new[p]),
        rebuild=rebuild,
    )


def ensure_ingested(
    store: KnowledgeStore,
    embedder: Embedder,
    settings: RagSettings,
    progress: ProgressFactory | None = None,
    force: bool = False,
) -> IngestReport:
    """Blocking (hashing, maybe embedding): run it in a worker thread. It holds the store's writer from start
    to end: one ingest or import at a time in a process, and what to build is decided from what is served
    with no other writer in between."""
    started = time.perf_counter()
    with store.writer() as writer:
        sources = knowledge_sources(settings)
        wanted = _manifest(settings, sources)
        active = store.refresh()
        if active is not None and active.manifest.matches(wanted) and not force:
            writer.remove_stale()  # leftovers of an interrupted build, if any
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
        changes = compare(active.manifest if active else None, wanted, force)
        return _build(store, writer, embedder, settings, sources, wanted, changes, force, progress, started)


def _build(
    store: KnowledgeStore,
    writer: StoreWriter,
    embedder: Embedder,
    settings: RagSettings,
    sources: list[SourceFile],
    wanted: Manifest,
    changes: Changes,
    force: bool,
    progress: ProgressFactory | None,
    started: float,
) -> IngestReport:
    active = store.active_build
    log.info(
        "knowledge_ingest_started",
        reason=_reason(changes, active is None),
        added=len(changes.added),
        changed=len(changes.changed),
        removed=len(changes.removed),
        unchanged=len(changes.unchanged),
    )
    build = writer.new_build(wanted)

    kept = set(changes.unchanged)
    copied = build.copy_from_active(kept)
    entries = {p: e for p, e in (active.manifest.files.items() if active else ()) if p in kept}

    tokens = tokens_for(resolve_model_path(settings.embedding_model))
    todo = [s for s in sources if s.name not in kept]
    chunks, new_entries = _chunk_files(todo, settings, tokens)
    entries.update(new_entries)
    # Vectors already stored for these chunk ids are still right for them; a forced rebuild trusts none.
    known = {} if force else build.known_vectors([c.id for c in chunks])
    reused = [c for c in chunks if c.id in known]
    _add(build, reused, [known[c.id] for c in reused])
    fresh = sorted((c for c in chunks if c.id not in known), key=lambda c: len(c.embedding_text()))
    _embed_and_add(embedder, build, fresh, progress)

    manifest = wanted.with_files(dict(sorted(entries.items())))
    build.complete(manifest)
    report = IngestReport(
        status="rebuilt" if changes.rebuild else "updated",
        version=manifest.version,
        files=len(manifest.files),
        chunks=copied + len(chunks),
        seconds=_since(started),
        embedded=len(fresh),
        reused=copied + len(reused),
        added=changes.added,
        changed=changes.changed,
        removed=changes.removed,
        skipped=sorted(p for p, e in new_entries.items() if e.skipped),
    )
    log.info(
        "knowledge_ingest_done",
        status=report.status,
        version=report.version,
        chunks=report.chunks,
        embedded=report.embedded,
        reused=report.reused,
        seconds=report.seconds,
    )
    return report


def _chunk_files(
    sources: list[SourceFile], settings: RagSettings, tokens: TokenCounter
) -> tuple[list[Chunk], dict[str, FileEntry]]:
    chunks: list[Chunk] = []
    entries: dict[str, FileEntry] = {}
    now = time.time()
    limits = ReadLimits.of(settings)
    with limits.parsers() as parsers:
        for source in sources:
            try:
                document = load(source, limits, parsers)
                found = chunk_document(document, settings.chunk_size, settings.chunk_overlap, tokens)
            except UnreadableFile as exc:
                # One bad file must not keep the rest of the knowledge from being served.
                _skipped(entries, source, str(exc), now)
                continue
            except Exception as exc:  # a failure nobody foresaw, on outside input: still this file only
                log.exception("knowledge_file_failed", source=source.name)
                _skipped(entries, source, f"could not be read ({type(exc).__name__})", now)
                continue
            entries[source.name] = FileEntry(source.sha256, len(found), now)
            chunks.extend(found)
    return chunks, entries


def _skipped(entries: dict[str, FileEntry], source: SourceFile, reason: str, now: float) -> None:
    log.warning("knowledge_file_skipped", source=source.name, reason=reason)
    entries[source.name] = FileEntry(source.sha256, 0, now, skipped=reason)


def _embed_and_add(
    embedder: Embedder, build: Build, chunks: list[Chunk], progress: ProgressFactory | None
) -> None:
    """Embed group after group while the group before is written: the store's indexing then hides behind
    the model instead of adding to it. One write in flight at a time, in order; a failed write stops it."""
    if not chunks:
        return
    on_batch = progress(len(chunks)) if progress else None
    group = embedder.batch_size * _GROUP_BATCHES
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer") as write_thread:
        writing: Future[None] | None = None
        for start in range(0, len(chunks), group):
            batch = chunks[start : start + group]
            vectors = embedder.embed([c.embedding_text() for c in batch], progress=on_batch)
            if writing is not None:
                writing.result()
            writing = write_thread.submit(_add, build, batch, vectors)
        if writing is not None:
            writing.result()


def _add(build: Build, chunks: list[Chunk], vectors: list[list[float]]) -> None:
    build.add([Record(c.id, c.text, _metadata(c), v) for c, v in zip(chunks, vectors, strict=True)])


def _manifest(settings: RagSettings, sources: list[SourceFile]) -> Manifest:
    return Manifest(
        embedding_model=settings.embedding_model,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        chunker=CHUNKER_VERSION,
        files={s.name: FileEntry(s.sha256) for s in sources},
    )


def _reason(changes: Changes, empty: bool) -> str:
    if empty:
        return "empty store"
    if changes.rebuild:
        return "embedding model, chunking or a forced rebuild"
    return "knowledge files changed"


def _metadata(chunk: Chunk) -> dict[str, str | int]:
    return {
        "source": chunk.source,
        "title": chunk.title,
        "headings": chunk.heading_path,
        "index": chunk.index,
    }


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
