"""The Chroma store, and the only module that talks to Chroma: one collection per complete build, switched to
only when the build is complete.

A build writes into a fresh collection marked `building`; only when every chunk is in does its
metadata flip to `complete` with the manifest (one write). Readers only ever see the newest complete
collection, so an ingest killed half-way leaves the previous state served, and the leftovers are
removed by the next ingest.

Writers (an ingest, an import) get a `StoreWriter` from `KnowledgeStore.writer()` and fill a `Build` it hands
out; they never see a Chroma collection.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from rag.errors import StoreError
from rag.manifest import Manifest
from rag.settings import RagSettings

if TYPE_CHECKING:
    from chromadb import Collection, GetResult, Include
    from chromadb.api import ClientAPI

log = structlog.get_logger(__name__)

STATUS_BUILDING = "building"
STATUS_COMPLETE = "complete"
REFRESH_SECONDS = 5.0
# Chroma's embedded calls hold the GIL from start to end: an add of 118 chunks kept every other thread of
# the service (the event loop, /health, visitors' answers) waiting 150 ms (a call costs ~35 ms plus ~1.2 ms
# a chunk), and a read with vectors costs ~0.2 ms a chunk. Small pages keep each wait near 50 ms during an
# ingest, at ~2 ms more per chunk written (next to 20-60 ms to embed it).
_WRITE_BATCH = 16
_READ_PAGE = 256
_WHOLE: Include = ["embeddings", "documents", "metadatas"]
_TEXT: Include = ["documents", "metadatas"]
# One writer at a time in this process, through whichever KnowledgeStore object: two may open one folder.
_one_writer = threading.Lock()


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float  # cosine similarity, 1.0 = same direction


@dataclass(frozen=True, slots=True)
class Record:
    """A chunk as the store keeps it, vector included: what a build is filled with and an export holds."""

    id: str
    document: str
    metadata: dict[str, Any]
    embedding: list[float]


@dataclass(frozen=True, slots=True)
class CompleteBuild:
    name: str
    manifest: Manifest
    completed_at: float


class KnowledgeStore:
    """Owns the collections named `<prefix>-*` in one Chroma client (embedded or server)."""

    def __init__(self, client: ClientAPI, prefix: str, shared: bool = False) -> None:
        self._client = client
        self._prefix = prefix
        self._switch = threading.Lock()  # the served collection, its build and its count change together
        self._active: Collection | None = None
        self._active_build: CompleteBuild | None = None
        self._count = 0  # of the active build, which never changes once complete
        # On a server other replicas switch builds too: look for a newer one every few seconds.
        self._shared = shared
        self._refreshed = 0.0
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    @classmethod
    def persistent(cls, path: Path, prefix: str) -> KnowledgeStore:
        import chromadb
        from chromadb.config import Settings

        path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        store = cls(client, prefix)
        store.refresh()
        return store

    @classmethod
    def server(cls, host: str, port: int, prefix: str) -> KnowledgeStore:
        import chromadb
        from chromadb.config import Settings

        try:
            client = chromadb.HttpClient(host=host, port=port, settings=Settings(anonymized_telemetry=False))
        except Exception as exc:  # chromadb raises many unrelated types; callers need one
            raise StoreError(f"Chroma server at {host}:{port} is not reachable: {exc}") from exc
        store = cls(client, prefix, shared=True)
        store.refresh()
        store._watcher = threading.Thread(target=store._watch, name="store-watch", daemon=True)
        store._watcher.start()
        return store

    def _watch(self) -> None:
        """Follow builds that other replicas complete, so that health and cache keys show them too."""
        import httpx
        from chromadb.errors import ChromaError

        while not self._closed.wait(REFRESH_SECONDS):
            try:
                self.refresh()
            except (ChromaError, httpx.HTTPError, OSError, ValueError) as exc:  # the next round retries
                log.warning("store_refresh_failed", error=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._closed.set()

    # -- reading -------------------------------------------------------------------------------

    def keep_current(self) -> None:
        """On a shared server, switch to a build another replica completed (at most every few seconds)."""
        if self._shared and time.monotonic() - self._refreshed > REFRESH_SECONDS:
            self.refresh()

    @property
    def active_build(self) -> CompleteBuild | None:
        return self._active_build

    def refresh(self) -> CompleteBuild | None:
        """Point readers at the newest complete build."""
        self._refreshed = time.monotonic()
        builds = self._complete_builds()
        with self._switch:
            if builds:
                newest = builds[0]
                if self._active_build is None or self._active_build.name != newest.name:
                    self._active = self._client.get_collection(newest.name)
                    self._count = int(self._active.count())
                self._active_build = newest
            else:
                self._active, self._active_build, self._count = None, None, 0
        return self._active_build

    def count(self) -> int:
        """Chunks in the active build; read from memory, safe to call on the event loop."""
        return self._count

    def query(self, embedding: Sequence[float], k: int) -> list[Hit]:
        self.keep_current()
        for attempt in (1, 2):
            collection = self._active
            if collection is None:
                return []
            try:
                result = collection.query(
                    query_embeddings=[embedding],
                    n_results=k,
                    include=["documents", "metadatas", "distances"],
                )
                break
            except Exception as exc:  # chromadb raises many unrelated types; callers need one
                if attempt == 2 or not self._shared:
                    raise StoreError(f"vector query failed: {type(exc).__name__}") from exc
                # Another replica may have switched builds and removed this one a moment ago.
                self.refresh()
        ids, docs = result["ids"][0], (result["documents"] or [[]])[0]
        metas, dists = (result["metadatas"] or [[]])[0], (result["distances"] or [[]])[0]
        return [
            Hit(id=i, text=d or "", metadata=dict(m or {}), score=1.0 - float(dist))
            for i, d, m, dist in zip(ids, docs, metas, dists, strict=True)
        ]

    def chunks(self) -> tuple[str | None, list[Hit]]:
        """Every chunk of the active build, with the build's name (for indexes derived from it)."""
        collection, build = self._active, self._active_build
        if collection is None or build is None:
            return None, []
        return build.name, [hit for page in self._pages(collection, _TEXT) for hit in _hits(page)]

    def export_chunks(self) -> Iterator[Record]:
        """Every chunk of the active build with its vector, page by page."""
        collection = self._active
        if collection is not None:
            for page in self._pages(collection, _WHOLE):
                yield from _records(page)

    def get(self, ids: list[str]) -> list[Hit]:
        """Chunks by id (in the order given) from the active build."""
        collection = self._active
        if collection is None or not ids:
            return []
        try:
            found = {hit.id: hit for hit in _hits(collection.get(ids=ids, include=_TEXT))}
        except Exception as exc:  # chromadb raises many unrelated types; callers need one
            raise StoreError(f"chunk lookup failed: {type(exc).__name__}") from exc
        return [found[i] for i in ids if i in found]

    def sample_texts(self, n: int) -> list[str]:
        """The texts of up to `n` chunks spread evenly over the active build (the same ones every time)."""
        collection, total = self._active, self._count
        if collection is None or not total:
            return []
        texts: list[str] = []
        for offset in sorted({i * total // n for i in range(n)}):
            page = collection.get(include=["documents"], limit=1, offset=offset)
            texts += [text for text in page["documents"] or [] if text]
        return texts

    def dimension(self) -> int | None:
        """The length of the active build's vectors; None when there is none."""
        collection = self._active
        if collection is None:
            return None
        vectors = _vectors(collection.get(limit=1, include=["embeddings"]))
        return len(vectors[0]) if vectors else None

    def build_statuses(self) -> dict[str, str]:
        """Every build this store holds, complete or not, by name: its status (`building`, `complete`)."""
        return {c.name: str((c.metadata or {}).get("status", "")) for c in self._owned()}

    # -- writing -------------------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[StoreWriter]:
        """The one way to change what the store holds: one writer at a time in this process.

        Writers must take turns because completing a build removes every other build, one being filled
        included, and because a writer decides what to build from what is served. Three locks keep writers
        apart, each at its own scope: this one (threads of one process), `rag.store_lock` (one process per
        embedded store folder, for the process's life: Chroma's embedded store is not process-safe) and, on a
        Chroma server shared by replicas, the app's Redis lock (`api.ingest_lock`) around each ingest."""
        with _one_writer:
            writer = StoreWriter(self)
            try:
                yield writer
            finally:
                writer.closed = True

    def _new_build(self, manifest: Manifest) -> Collection:
        name = f"{self._prefix}-{manifest.version}-{time.time_ns() // 1_000_000:x}"
        return self._client.create_collection(
            name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={
                "status": STATUS_BUILDING,
                "version": manifest.version,
                "parameters": _parameters_key(manifest),
                "created_at": time.time(),
            },
            embedding_function=None,
        )

    def _donors(self, manifest: Manifest, besides: str) -> list[Collection]:
        """Builds whose vectors were made the way `manifest` makes them, but for `besides`: the active
        build, then those an interrupted ingest left behind."""
        donors: list[Collection] = []
        active, build = self._active, self._active_build
        if active is not None and build is not None and build.manifest.parameters == manifest.parameters:
            donors.append(active)
        key = _parameters_key(manifest)
        return donors + [
            c
            for c in self._owned()
            if c.name != besides
            and (c.metadata or {}).get("status") == STATUS_BUILDING
            and (c.metadata or {}).get("parameters") == key
        ]

    def _remove_stale(self) -> int:
        active = self._active_build.name if self._active_build else None
        removed = 0
        for collection in self._owned():
            if collection.name != active:
                self._client.delete_collection(collection.name)
                log.info("store_collection_removed", collection=collection.name)
                removed += 1
        return removed

    # -- Chroma ----------------------------------------------------------------------------------

    def _pages(
        self, collection: Collection, include: Include, ids: Sequence[str] | None = None
    ) -> Iterator[GetResult]:
        """`collection` read a page at a time (small pages: see _READ_PAGE): every record, or those of `ids`.
        Every read of more than a few chunks goes through here."""
        step = self._step(_READ_PAGE)
        if ids is not None:
            for start in range(0, len(ids), step):
                yield collection.get(ids=list(ids[start : start + step]), include=include)
            return
        offset = 0
        while True:
            page = collection.get(include=include, limit=step, offset=offset)
            yield page
            if len(page["ids"]) < step:
                return
            offset += step

    def _step(self, wanted: int) -> int:
        return min(wanted, int(self._client.get_max_batch_size()))

    def _owned(self) -> list[Collection]:
        return [c for c in self._client.list_collections() if c.name.startswith(f"{self._prefix}-")]

    def _complete_builds(self) -> list[CompleteBuild]:
        builds = []
        for collection in self._owned():
            meta = collection.metadata or {}
            if meta.get("status") != STATUS_COMPLETE or "manifest" not in meta:
                continue
            try:
                manifest = Manifest.from_json(str(meta["manifest"]))
            except (ValueError, KeyError, TypeError):
                log.warning("store_manifest_unreadable", collection=collection.name)
                continue
            builds.append(CompleteBuild(collection.name, manifest, float(meta.get("completed_at", 0.0))))
        return sorted(builds, key=lambda b: b.completed_at, reverse=True)


class StoreWriter:
    """What the writer of the moment may do; valid only inside `KnowledgeStore.writer()`."""

    def __init__(self, store: KnowledgeStore) -> None:
        self._store = store
        self.closed = False

    def new_build(self, manifest: Manifest) -> Build:
        """A new, empty build of the knowledge `manifest` describes: not served until it is completed."""
        self.check()
        return Build(self._store, self, self._store._new_build(manifest), manifest)

    def remove_stale(self) -> int:
        """Delete unfinished builds and every complete build but the active one."""
        self.check()
        return self._store._remove_stale()

    def check(self) -> None:
        if self.closed:
            raise StoreError("the store was changed outside its writer: another writer may be at work")


class Build:
    """A build being filled, never served until `complete`. An unfinished build stays in the store (the next
    ingest takes its vectors, then removes it) unless it is dropped."""

    def __init__(
        self, store: KnowledgeStore, writer: StoreWriter, collection: Collection, manifest: Manifest
    ) -> None:
        self._store = store
        self._writer = writer
        self._collection = collection
        self._manifest = manifest

    @property
    def name(self) -> str:
        return self._collection.name

    def add(self, records: Sequence[Record]) -> None:
        self._writer.check()
        step = self._store._step(_WRITE_BATCH)
        for start in range(0, len(records), step):
            batch = records[start : start + step]
            vectors: list[Sequence[float] | Sequence[int]] = [r.embedding for r in batch]  # Chroma's type
            self._collection.add(
                ids=[r.id for r in batch],
                embeddings=vectors,
                documents=[r.document for r in batch],
                metadatas=[r.metadata for r in batch],
            )

    def copy_from_active(self, sources: set[str]) -> int:
        """Copy every chunk of the active build that comes from one of `sources`, vector included."""
        active = self._store._active
        if active is None or not sources:
            return 0
        copied = 0
        for page in self._store._pages(active, _WHOLE):
            kept = [r for r in _records(page) if r.metadata.get("source") in sources]
            self.add(kept)
            copied += len(kept)
        return copied

    def known_vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """The vectors of `ids` already in a build made as this one is (the active build, or one an
        interrupted ingest left): a chunk's id names its exact text, so they need not be embedded again."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, list[float]] = {}
        for donor in self._store._donors(self._manifest, besides=self.name):
            missing = [i for i in wanted if i not in found]
            for page in self._store._pages(donor, ["embeddings"], ids=missing):
                found.update(zip(page["ids"], _vectors(page), strict=True))
        return found

    def ids(self) -> list[str]:
        return [i for page in self._store._pages(self._collection, []) for i in page["ids"]]

    def count(self) -> int:
        return int(self._collection.count())

    def complete(self, manifest: Manifest) -> None:
        """The switch-over: one metadata write makes the build visible, then every other build goes."""
        self._writer.check()
        if manifest.parameters != self._manifest.parameters:
            # Its vectors were made one way; a manifest that says another would have them mixed with others.
            raise StoreError(f"build {self.name} cannot be completed with other embedding parameters")
        self._collection.modify(
            metadata={
                "status": STATUS_COMPLETE,
                "version": manifest.version,
                "manifest": manifest.to_json(),
                "completed_at": time.time(),
            }
        )
        self._store.refresh()
        self._writer.remove_stale()

    def drop(self) -> None:
        """Remove a build that will not be completed."""
        self._writer.check()
        self._store._client.delete_collection(self.name)


def open_store(settings: RagSettings) -> KnowledgeStore:
    """The Chroma server when CHROMA_HOST is set, the embedded store in CHROMA_PATH otherwise."""
    if settings.chroma_host:
        return KnowledgeStore.server(settings.chroma_host, settings.chroma_port, settings.collection_prefix)
    return KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)


def _hits(page: GetResult) -> list[Hit]:
    ids = page["ids"]
    docs, metas = page["documents"] or [""] * len(ids), page["metadatas"] or [{}] * len(ids)
    return [Hit(i, d or "", dict(m or {}), 0.0) for i, d, m in zip(ids, docs, metas, strict=True)]


def _records(page: GetResult) -> list[Record]:
    return [
        Record(hit.id, hit.text, hit.metadata, vector)
        for hit, vector in zip(_hits(page), _vectors(page), strict=True)
    ]


def _vectors(page: GetResult) -> list[list[float]]:
    """The page's vectors as plain floats: what JSON writes, and what an export gives back when read."""
    found = page["embeddings"]
    if found is None:  # compared with None: a numpy array's truth value is an error
        return []
    if isinstance(found, list):
        return [[float(x) for x in vector] for vector in found]
    rows: list[list[float]] = found.tolist()  # one numpy array, as Chroma returns them: converted in one go
    return rows


def _parameters_key(manifest: Manifest) -> str:
    return json.dumps(manifest.parameters)
