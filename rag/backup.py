"""Export a store's active build (manifest, chunks, vectors) to one file, and import it elsewhere without
embedding anything.

The file is gzipped JSON lines: a header with the manifest and the chunk count, then one chunk per line. An
export is written beside its target and renamed into place when complete; an import writes a new build and
switches to it only when every chunk is in, so a broken file leaves the served knowledge as it was.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.manifest import Manifest
from rag.store import KnowledgeStore

FORMAT = "kb-chatbot-store"
VERSION = 1
_BATCH = 1000


class BackupError(Exception):
    """The file is not a complete export, or does not fit this store."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    version: str
    files: int
    chunks: int


def export_store(store: KnowledgeStore, target: Path) -> BackupSummary:
    build = store.active_build
    if build is None:
        raise BackupError("the store holds no complete build to export")
    partial = target.with_name(target.name + ".partial")
    count = 0
    with gzip.open(partial, "wt", encoding="utf-8") as out:
        header = {"format": FORMAT, "version": VERSION, "manifest": json.loads(build.manifest.to_json())}
        out.write(json.dumps({**header, "chunks": store.count()}) + "\n")
        for chunk in store.export_chunks():
            out.write(json.dumps(chunk, separators=(",", ":")) + "\n")
            count += 1
    if count != store.count():
        partial.unlink(missing_ok=True)
        raise BackupError(f"the store changed during the export ({count} of {store.count()} chunks read)")
    os.replace(partial, target)
    return BackupSummary(build.manifest.version, len(build.manifest.files), count)


def import_store(store: KnowledgeStore, source: Path, expected: Manifest | None = None) -> BackupSummary:
    """`expected`: the manifest the service would build (its model and chunking must match the file's)."""
    lines = _lines(source)
    header = _header(next(lines, None))
    manifest = Manifest.from_json(json.dumps(header["manifest"]))
    if expected is not None and manifest.parameters != expected.parameters:
        raise BackupError(
            f"the export was made with {manifest.embedding_model} (chunks {manifest.chunk_size}/"
            f"{manifest.chunk_overlap}, chunker {manifest.chunker}); this service uses "
            f"{expected.embedding_model} ({expected.chunk_size}/{expected.chunk_overlap}, chunker "
            f"{expected.chunker}): its vectors would not match"
        )
    collection = store.begin_build(manifest)
    try:
        count = 0
        batch: list[dict[str, Any]] = []
        for line in lines:
            batch.append(_chunk(line))
            if len(batch) == _BATCH:
                count += _add(store, collection, batch)
                batch = []
        count += _add(store, collection, batch)
        if count != header["chunks"]:
            raise BackupError(f"the file is incomplete: {count} of {header['chunks']} chunks")
    except BackupError:
        store.drop(collection)  # the served build was never touched
        raise
    store.complete_build(collection, manifest)
    return BackupSummary(manifest.version, len(manifest.files), count)


def _lines(source: Path) -> Iterator[str]:
    try:
        with gzip.open(source, "rt", encoding="utf-8") as handle:
            yield from handle
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise BackupError(f"{source} is not a readable export: {exc}") from exc


def _header(line: str | None) -> dict[str, Any]:
    try:
        header = json.loads(line or "")
    except ValueError as exc:
        raise BackupError("the file has no export header") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError("the file is not a knowledge-store export")
    if header.get("version") != VERSION:
        raise BackupError(
            f"export format version {header.get('version')} is not supported (expected {VERSION})"
        )
    return header


def _chunk(line: str) -> dict[str, Any]:
    try:
        chunk = json.loads(line)
        if not isinstance(chunk, dict):
            raise TypeError("not an object")
        return {k: chunk[k] for k in ("id", "document", "metadata", "embedding")}
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"a chunk line is damaged: {exc}") from exc


def _add(store: KnowledgeStore, collection: Any, batch: list[dict[str, Any]]) -> int:
    if batch:
        store.add(
            collection,
            ids=[c["id"] for c in batch],
            embeddings=[c["embedding"] for c in batch],
            documents=[c["document"] for c in batch],
            metadatas=[c["metadata"] for c in batch],
        )
    return len(batch)
