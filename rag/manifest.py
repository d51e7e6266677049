"""What a built collection holds: file hashes and the parameters that shaped its vectors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Manifest:
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 of its bytes
    chunker: int = 0  # the chunking code's version: its output changes when the code does
    schema: int = SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Manifest:
        data = json.loads(raw)
        return cls(
            embedding_model=str(data["embedding_model"]),
            chunk_size=int(data["chunk_size"]),
            chunk_overlap=int(data["chunk_overlap"]),
            files={str(k): str(v) for k, v in data["files"].items()},
            chunker=int(data.get("chunker", 0)),
            schema=int(data.get("schema", 0)),
        )

    @property
    def version(self) -> str:
        """A short fingerprint: it changes whenever the knowledge or how it was embedded changes."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
