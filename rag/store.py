"""The Chroma store: one collection per complete build, switched to only when the build is complete.

A build writes into a fresh collection marked `building`; only when every chunk is in does its
metadata flip to `complete` with the manifest (one write). Readers only ever see the newest complete
collection, so an ingest killed half-way leaves the previous state served, and the leftovers are
removed by the next ingest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from rag.errors import StoreError
from rag.manifest import Manifest
from rag.settings import RagSettings

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


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float  # cosine similarity, 1.0 = same direction


@dataclass(frozen=True, slots=True)
class CompleteBuild:
    name: str
    manifest: Manifest
    completed_at: float


class KnowledgeStore:
    """Owns the collections named `<prefix>-*` in one Chroma client (embedded or server)."""

    def __init__(self, client: Any, prefix: str, shared: bool = False) -> None:
        self._client = client
        self._prefix = prefix
        self._lock = threading.Lock()
        self._active: Any = None
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

    @property
    def active_collection(self) -> Any:
        return self._active

    def refresh(self) -> CompleteBuild | None:
        """Point readers at the newest complete build."""
        self._refreshed = time.monotonic()
        builds = self._complete_builds()
        with self._lock:
            if builds:
                newest = builds[0]
                if self._active_build is None or self._active_build.name != newest.name:
                    self._active = self._client.get_collection(newest.name)
                    self._count = int(self._active.count())
                self._active_build = newest
            else:
                self._active, self._active_build, self._count = None, None, 0
        return self._active_build

    def _step(self, wanted: int) -> int:
        return min(wanted, int(self._client.get_max_batch_size()))

    def count(self) -> int:
        """Chunks in the active build; read from memory, safe to call on the event loop."""
        return self._count

    def query(self, embedding: Sequence[float], k: int) -> list[Hit]:
        self.keep_current()
        result = None
        for attempt in (1, 2):
            try:
                result = self._query(embedding, k)
                break
            except Exception as exc:  # chromadb raises many unrelated types; callers need one
                if attempt == 2 or not self._shared:
                    raise StoreError(f"vector query failed: {type(exc).__name__}") from exc
                # Another replica may have switched builds and removed this one a moment ago.
                self.refresh()
        if result is None:
            return []
        ids, docs = result["ids"][0], (result["documents"] or [[]])[0]
        metas, dists = (result["metadatas"] or [[]])[0], (result["distances"] or [[]])[0]
        return [
            Hit(id=i, text=d or "", metadata=dict(m or {}), score=1.0 - float(dist))
            for i, d, m, dist in zip(ids, docs, metas, dists, strict=True)
        ]

    def _query(self, embedding: Sequence[float], k: int) -> Any:
        collection = self._active
        if collection is None:
            return None
        return collection.query(
            query_embeddings=[list(embedding)], n_results=k, include=["documents", "metadatas", "distances"]
        )

    def chunks(self) -> tuple[str | None, list[Hit]]:
        """Every chunk of the active build, with the build's name (for indexes derived from it)."""
        collection, build = self._active, self._active_build
        if collection is None or build is None:
            return None, []
        hits: list[Hit] = []
        step = self._step(_READ_PAGE)
        for offset in range(0, self._count, step):
            page = collection.get(include=["documents", "metadatas"], limit=step, offset=offset)
            metas = page["metadatas"] or [{}] * len(page["ids"])
            docs = page["documents"] or [""] * len(page["ids"])
            hits += [
                Hit(i, d or "", dict(m or {}), 0.0) for i, d, m in zip(page["ids"], docs, metas, strict=True)
            ]
        return build.name, hits

    def export_chunks(self) -> Iterator[dict[str, Any]]:
        """Every chunk of the active build with its vector, page by page."""
        collection = self._active
        if collection is None:
            return
        step = self._step(_READ_PAGE)
        for offset in range(0, self._count, step):
            page = collection.get(include=["embeddings", "documents", "metadatas"], limit=step, offset=offset)
            for n, chunk_id in enumerate(page["ids"]):
                yield {
                    "id": chunk_id,
                    "document": (page["documents"] or [])[n],
                    "metadata": (page["metadatas"] or [])[n],
                    "embedding": [float(x) for x in page["embeddings"][n]],
                }

    def get(self, ids: list[str]) -> list[Hit]:
        """Chunks by id (in the order given) from the active build."""
        collection = self._active
        if collection is None or not ids:
            return []
        try:
            page = collection.get(ids=ids, include=["documents", "metadatas"])
        except Exception as exc:  # chromadb raises many unrelated types; callers need one
            raise StoreError(f"chunk lookup failed: {type(exc).__name__}") from exc
        found = {
            i: Hit(i, d or "", dict(m or {}), 0.0)
            for i, d, m in zip(page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True)
        }
        return [found[i] for i in ids if i in found]

    # -- building ------------------------------------------------------------------------------

    def begin_build(self, manifest: Manifest) -> Any:
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

    def unfinished_builds(self, manifest: Manifest) -> list[Any]:
        """Builds an interrupted ingest left behind whose vectors were made the way `manifest` makes them:
        what they hold need not be embedded again."""
        key = _parameters_key(manifest)
        return [
            c
            for c in self._owned()
            if (c.metadata or {}).get("status") == STATUS_BUILDING
            and (c.metadata or {}).get("parameters") == key
        ]

    def vectors(self, collections: Sequence[Any], ids: Sequence[str]) -> dict[str, Any]:
        """The stored vector of each of `ids` found in `collections` (a chunk id names its exact text)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Any] = {}
        step = self._step(_READ_PAGE)
        for collection in collections:
            missing = [i for i in wanted if i not in found]
            for start in range(0, len(missing), step):
                page = collection.get(ids=missing[start : start + step], include=["embeddings"])
                found.update(zip(page["ids"], page["embeddings"], strict=True))
        return found

    def copy_sources(self, target: Any, sources: set[str]) -> int:
        """Copy every chunk of the active build that comes from one of `sources`, vector included."""
        collection = self._active
        if collection is None or not sources:
            return 0
        copied = 0
        step = self._step(_READ_PAGE)
        for offset in range(0, self._count, step):
            page = collection.get(include=["embeddings", "documents", "metadatas"], limit=step, offset=offset)
            keep = [
                n for n, meta in enumerate(page["metadatas"] or []) if (meta or {}).get("source") in sources
            ]
            if not keep:
                continue
            self.add(
                target,
                ids=[page["ids"][n] for n in keep],
                embeddings=[page["embeddings"][n] for n in keep],
                documents=[(page["documents"] or [])[n] for n in keep],
                metadatas=[(page["metadatas"] or [])[n] for n in keep],
            )
            copied += len(keep)
        return copied

    def add(
        self,
        collection: Any,
        ids: list[str],
        embeddings: list[list[float]],
        documents: list[str],
        metadatas: list[dict[str, Any]],
    ) -> None:
        step = self._step(_WRITE_BATCH)
        for start in range(0, len(ids), step):
            end = start + step
            collection.add(
                ids=ids[start:end],
                embeddings=embeddings[start:end],
                documents=documents[start:end],
                metadatas=metadatas[start:end],
            )

    def complete_build(self, collection: Any, manifest: Manifest) -> None:
        """The switch-over: one metadata write makes the build visible, then old builds go."""
        collection.modify(
            metadata={
                "status": STATUS_COMPLETE,
                "version": manifest.version,
                "manifest": manifest.to_json(),
                "completed_at": time.time(),
            }
        )
        self.refresh()
        self.remove_stale()

    def drop(self, collection: Any) -> None:
        """Remove a build that will not be completed."""
        self._client.delete_collection(collection.name)

    def remove_stale(self) -> int:
        """Delete unfinished builds and every complete build but the active one (only the ingest that
        holds the ingest lock may call this: it would delete a build in progress)."""
        active = self._active_build.name if self._active_build else None
        removed = 0
        for collection in self._owned():
            if collection.name != active:
                self._client.delete_collection(collection.name)
                log.info("store_collection_removed", collection=collection.name)
                removed += 1
        return removed

    def _owned(self) -> list[Any]:
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


def open_store(settings: RagSettings) -> KnowledgeStore:
    """The Chroma server when CHROMA_HOST is set, the embedded store in CHROMA_PATH otherwise."""
    if settings.chroma_host:
        return KnowledgeStore.server(settings.chroma_host, settings.chroma_port, settings.collection_prefix)
    return KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)


def _parameters_key(manifest: Manifest) -> str:
    return json.dumps(manifest.parameters)
