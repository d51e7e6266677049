"""Export a store's active build (manifest, chunks, vectors) to one file, and import it elsewhere without
embedding anything.

The file is gzipped JSON lines: a header with the manifest and the chunk count, then one chunk per line. An
export is written beside its target and renamed into place when complete; an import writes a new build and
switches to it only when every chunk is in, so a broken file leaves the served knowledge as it was.

An import trusts nothing in the file: it may be damaged, or made to harm. Every line is read up to a limit
(a small file can inflate to gigabytes), the header is checked before any chunk is read, each chunk is
checked before it reaches Chroma, and any failure drops the new build and ends as one `BackupError`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

from rag.manifest import Manifest
from rag.store import Build, KnowledgeStore, Record

FORMAT = "kb-chatbot-store"
VERSION = 1
MIB = 1024 * 1024
# The header holds the manifest, ~150 bytes a knowledge file: 16 MiB is ~100,000 files.
MAX_HEADER_BYTES = 16 * MIB
# A chunk line holds a chunk's text and one vector (384 floats are ~8 KB): 1 MiB is far more than needed.
MAX_LINE_BYTES = MIB
# Chunks are written to Chroma in batches, flushed by count or by size, whichever comes first: what an
# import holds in memory does not depend on the file's size.
BATCH_CHUNKS = 1000
BATCH_BYTES = 16 * MIB
_CHUNK_KEYS = ("id", "document", "metadata", "embedding")
# What reading a damaged gzip raises: zlib.error (corrupt deflate data) is not an OSError.
_READ_ERRORS = (OSError, EOFError, zlib.error)
# What Manifest.from_json raises on a manifest of the wrong shape.
_MANIFEST_ERRORS = (ValueError, KeyError, TypeError, AttributeError, ArithmeticError)
_MAX_MESSAGE = 300


class BackupError(Exception):
    """The file is not a complete export, or does not fit this store."""

    def __init__(self, message: str) -> None:
        # One short line whatever the file held: the CLI prints it as it is.
        flat = " ".join(message.split())
        super().__init__(flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "...")


@dataclass(frozen=True, slots=True)
class BackupSummary:
    version: str
    files: int
    chunks: int


# -- export --------------------------------------------------------------------------------------


def export_store(store: KnowledgeStore, target: Path) -> BackupSummary:
    build = store.active_build
    if build is None:
        raise BackupError("the store holds no complete build to export")
    partial = target.with_name(target.name + ".partial")
    try:
        count = _write(store, build.manifest, partial)
        if count != store.count():
            raise BackupError(f"the store changed during the export ({count} of {store.count()} chunks read)")
        os.replace(partial, target)
    except BaseException as exc:
        # Never leave a file behind that looks like an export and is not a complete one.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BackupError(f"cannot write the export to {target}: {exc}") from exc
        raise
    return BackupSummary(build.manifest.version, len(build.manifest.files), count)


def _write(store: KnowledgeStore, manifest: Manifest, partial: Path) -> int:
    count = 0
    with gzip.open(partial, "wt", encoding="utf-8") as out:
        header = {"format": FORMAT, "version": VERSION, "manifest": json.loads(manifest.to_json())}
        out.write(json.dumps({**header, "chunks": store.count()}) + "\n")
        for record in store.export_chunks():
            chunk = {
                "id": record.id,
                "document": record.document,
                "metadata": record.metadata,
                "embedding": record.embedding,
            }
            out.write(json.dumps(chunk, separators=(",", ":")) + "\n")
            count += 1
    return count


# -- import --------------------------------------------------------------------------------------


def import_store(store: KnowledgeStore, source: Path, expected: Manifest | None = None) -> BackupSummary:
    """`expected`: the manifest the service would build (its model and chunking must match the file's)."""
    with _open(source) as reader:
        header = _header(reader.line(MAX_HEADER_BYTES, "the header"))
        manifest = _manifest(header)
        if expected is not None and manifest.parameters != expected.parameters:
            raise BackupError(
                f"the export was made with {manifest.embedding_model} (chunks {manifest.chunk_size}/"
                f"{manifest.chunk_overlap}, chunker {manifest.chunker}); this service uses "
                f"{expected.embedding_model} ({expected.chunk_size}/{expected.chunk_overlap}, chunker "
                f"{expected.chunker}): its vectors would not match"
            )
        with store.writer() as writer:
            build = writer.new_build(manifest)
            try:
                count = _fill(build, reader, header["chunks"], _served_dimension(store, manifest))
            except BaseException as exc:
                _drop(build, exc)  # the served build was never touched
                if isinstance(exc, Exception) and not isinstance(exc, BackupError):
                    # Chroma refuses with many types (ValueError, its own errors...): callers need one.
                    raise BackupError(
                        f"the store refused the file's chunks: {type(exc).__name__}: {exc}"
                    ) from exc
                raise
            build.complete(manifest)
    return BackupSummary(manifest.version, len(manifest.files), count)


class _Reader:
    """The file's lines, each read up to a limit: a line longer than the limit is refused when the limit
    is reached, so a small file that inflates to gigabytes is never read whole."""

    def __init__(self, source: Path, handle: gzip.GzipFile) -> None:
        self._source = source
        self._handle = handle
        self.number = 0

    def line(self, limit: int, what: str) -> str | None:
        """The next line, decoded; None at the end of the file."""
        try:
            raw = self._handle.readline(limit + 1)
        except _READ_ERRORS as exc:
            raise BackupError(f"{self._source} is not a readable export: {exc}") from exc
        if not raw:
            return None
        self.number += 1
        if len(raw) > limit:
            raise BackupError(
                f"{what} (line {self.number}) is longer than {limit // MIB} MiB: no export holds one so long"
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BackupError(f"line {self.number} of {self._source} is not UTF-8 text: {exc}") from exc


@contextlib.contextmanager
def _open(source: Path) -> Iterator[_Reader]:
    try:
        handle = gzip.open(source, "rb")  # noqa: SIM115 - closed below: only opening errors are caught here
    except OSError as exc:  # missing, a directory, not readable
        raise BackupError(f"{source} is not a readable export: {exc}") from exc
    with handle:
        yield _Reader(source, handle)


def _header(line: str | None) -> dict[str, Any]:
    if line is None:
        raise BackupError("the file is empty: it has no export header")
    try:
        header = _parse(line)
    except (ValueError, RecursionError) as exc:
        raise BackupError("the file has no export header") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError("the file is not a knowledge-store export")
    version = header.get("version")
    if not _is_int(version) or version != VERSION:
        raise BackupError(f"export format version {_short(version)} is not supported (expected {VERSION})")
    chunks = header.get("chunks")
    if not _is_int(chunks) or chunks < 0:
        raise BackupError(f"the export header's chunk count {_short(chunks)} is not a count")
    return header


def _manifest(header: dict[str, Any]) -> Manifest:
    raw = header.get("manifest")
    if not isinstance(raw, dict):
        raise BackupError("the export header holds no manifest")
    try:
        return Manifest.from_json(json.dumps(raw))
    except _MANIFEST_ERRORS as exc:
        raise BackupError(f"the export's manifest is damaged: {type(exc).__name__}: {exc}") from exc


def _served_dimension(store: KnowledgeStore, manifest: Manifest) -> int | None:
    """The length of the served build's vectors when it was embedded as the file's were: the model's
    dimension, which every imported vector must have."""
    build = store.active_build
    if build is None or build.manifest.parameters != manifest.parameters:
        return None
    return store.dimension()


def _fill(build: Build, reader: _Reader, expected: int, dimension: int | None) -> int:
    """Add every chunk of the file to `build`; the number added."""
    count, size = 0, 0
    batch: list[dict[str, Any]] = []
    while (line := reader.line(MAX_LINE_BYTES, "a chunk line")) is not None:
        count += 1
        if count > expected:
            raise BackupError(f"the file holds more chunks than the {expected} its header counts")
        chunk = _chunk(line, reader.number)
        dimension = dimension or len(chunk["embedding"])
        if len(chunk["embedding"]) != dimension:
            raise _damaged(
                reader.number, f"its vector has {len(chunk['embedding'])} dimensions, not {dimension}"
            )
        batch.append(chunk)
        size += len(line)
        if len(batch) >= BATCH_CHUNKS or size >= BATCH_BYTES:
            _add(build, batch)
            batch, size = [], 0
    _add(build, batch)
    if count != expected:
        raise BackupError(f"the file is incomplete: {count} of {expected} chunks")
    # Chroma keeps the first of two chunks with one id when they come in different batches.
    stored = build.count()
    if stored != count:
        raise BackupError(f"the file repeats chunk ids: {count} chunks, {stored} distinct ids")
    return count


def _chunk(line: str, number: int) -> dict[str, Any]:
    try:
        chunk = _parse(line)
    except (ValueError, RecursionError) as exc:
        raise _damaged(number, f"not JSON ({exc})") from exc
    if not isinstance(chunk, dict):
        raise _damaged(number, "not a JSON object")
    missing = [key for key in _CHUNK_KEYS if key not in chunk]
    if missing:
        raise _damaged(number, f"no {', '.join(missing)}")
    if not isinstance(chunk["id"], str) or not chunk["id"]:
        raise _damaged(number, "its id is not a non-empty string")
    if not isinstance(chunk["document"], str):
        raise _damaged(number, "its document is not a string")
    if not _is_metadata(chunk["metadata"]):
        raise _damaged(number, "its metadata is not an object of strings, numbers and booleans")
    if not _is_vector(chunk["embedding"]):
        raise _damaged(number, "its embedding is not a list of finite numbers")
    return {key: chunk[key] for key in _CHUNK_KEYS}


def _is_metadata(value: Any) -> bool:
    # What ingestion writes: flat, non-empty (Chroma refuses an empty one), no nested values.
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(item, str | bool | int) or (isinstance(item, float) and math.isfinite(item))
            for item in value.values()
        )
    )


def _is_vector(value: Any) -> bool:
    # An export writes every component as a float: an int, a bool or a string is not one of ours.
    return (
        isinstance(value, list)
        and bool(value)
        and all(type(x) is float for x in value)
        and all(map(math.isfinite, value))
    )


def _add(build: Build, batch: list[dict[str, Any]]) -> None:
    if not batch:
        return
    ids = [c["id"] for c in batch]
    if len(set(ids)) != len(ids):
        raise BackupError("the file repeats chunk ids")
    build.add([Record(**c) for c in batch])


def _drop(build: Build, reason: BaseException) -> None:
    try:
        build.drop()
    except Exception as exc:  # e.g. the server went away: say so, with why the import failed
        raise BackupError(
            f"{reason}; the unfinished build {build.name} could not be removed ({exc}): "
            "the next ingest removes it"
        ) from exc


def _parse(line: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser takes them: no vector may hold one.
    return json.loads(line, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _damaged(number: int, why: str) -> BackupError:
    return BackupError(f"the chunk on line {number} is damaged: {why}")
