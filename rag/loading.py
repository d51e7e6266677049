"""Finding and reading the documents of the knowledge folder."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

SUPPORTED_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
_MD_TITLE = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A knowledge file found on disk, identified by its path relative to the knowledge folder."""

    path: Path
    relative: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    title: str
    text: str
    is_markdown: bool


def scan(knowledge_dir: Path) -> list[SourceFile]:
    """List the supported files with their content hashes (cheap: no parsing, no embedding)."""
    if not knowledge_dir.is_dir():
        raise FileNotFoundError(f"knowledge folder not found: {knowledge_dir}")
    found: list[SourceFile] = []
    for path in sorted(knowledge_dir.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(knowledge_dir).parts):
            continue
        relative = path.relative_to(knowledge_dir).as_posix()
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            log.info("knowledge_file_skipped", source=relative, reason="unsupported file type")
            continue
        found.append(SourceFile(path=path, relative=relative, sha256=_sha256(path)))
    return found


def load(source: SourceFile) -> Document:
    raw = source.path.read_bytes()
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").lstrip("\ufeff")
    is_markdown = source.path.suffix.lower() in {".md", ".markdown"}
    return Document(
        source=source.relative, title=_title(text, source.path), text=text, is_markdown=is_markdown
    )


def _title(text: str, path: Path) -> str:
    match = _MD_TITLE.search(text)
    if match:
        return match.group(1).strip()
    return path.stem.replace("-", " ").replace("_", " ").strip().title()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()
