"""What a built collection holds: each file's hash, chunk count and ingest time, and the parameters that
shaped its vectors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

SCHEMA = 2


@dataclass(frozen=True, slots=True)
class FileEntry:
    sha256: str  # of the file's bytes
    chunks: int = 0
    ingested_at: float = 0.0  # when these bytes were first embedded (unix time)
    skipped: str = ""  # why the file gave no text, if it gave none


@dataclass(frozen=True, slots=True)
class Manifest:
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    files: dict[str, FileEntry] = field(default_factory=dict)  # relative path -> entry
    chunker: int = 0  # the chunking code's version: its output changes when the code does
    schema: int = SCHEMA
    # Every cached answer's key holds the version: computed once, not per request (thousands of files).
    _version: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        content = json.dumps([self.parameters, sorted(self.hashes.items())], separators=(",", ":"))
        object.__setattr__(self, "_version", hashlib.sha256(content.encode()).hexdigest()[:16])

    def to_json(self) -> str:
        data = asdict(self)
        del data["_version"]  # derived, not stored
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Manifest:
        data = json.loads(raw)
        return cls(
            embedding_model=str(data["embedding_model"]),
            chunk_size=int(data["chunk_size"]),
            chunk_overlap=int(data["chunk_overlap"]),
            files={str(path): _entry(value) for path, value in data["files"].items()},
            chunker=int(data.get("chunker", 0)),
            schema=int(data.get("schema", 0)),
        )

    @property
    def parameters(self) -> tuple[str, int, int, int, int]:
        """What every vector depends on: when any of it changes, nothing built before can be reused."""
        return self.embedding_model, self.chunk_size, self.chunk_overlap, self.chunker, self.schema

    @property
    def hashes(self) -> dict[str, str]:
        return {path: entry.sha256 for path, entry in self.files.items()}

    @property
    def version(self) -> str:
        """A short fingerprint of the content: it changes whenever the knowledge or how it was embedded
        changes, and not when the same bytes are merely ingested again."""
        return self._version

    def matches(self, other: Manifest) -> bool:
        return self.version == other.version

    def with_files(self, files: dict[str, FileEntry]) -> Manifest:
        return replace(self, files=files)


def _entry(value: object) -> FileEntry:
    if isinstance(value, str):  # schema 1 kept only the hash
        return FileEntry(sha256=value)
    if not isinstance(value, dict):
        raise TypeError(f"unexpected manifest entry: {value!r}")
    return FileEntry(
        sha256=str(value["sha256"]),
        chunks=int(value.get("chunks", 0)),
        ingested_at=float(value.get("ingested_at", 0.0)),
        skipped=str(value.get("skipped", "")),
    )
