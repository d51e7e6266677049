"""Finding and reading the documents of the knowledge folder."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from rag.formats import UnreadableFile, html_to_text, pdf_to_text

__all__ = ["SUPPORTED_SUFFIXES", "Document", "SourceFile", "UnreadableFile", "load", "scan"]

log = structlog.get_logger(__name__)

SUPPORTED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf"})
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
    """The document's text; raises `UnreadableFile` for a file that cannot be turned into text."""
    suffix = source.path.suffix.lower()
    if suffix == ".pdf":
        title, text = pdf_to_text(source.path)
        return Document(source.relative, title or _fallback_title(source.path), text, is_markdown=False)
    raw = source.path.read_bytes()
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").lstrip("\ufeff")
    if suffix in {".html", ".htm"}:
        title, text = html_to_text(text)
        # Headings are Markdown now, so the chunker keeps the section path.
        return Document(source.relative, title or _title(text, source.path), text, is_markdown=True)
    is_markdown = suffix in {".md", ".markdown"}
    return Document(source.relative, _title(text, source.path), text, is_markdown=is_markdown)


def _title(text: str, path: Path) -> str:
    match = _MD_TITLE.search(text)
    return match.group(1).strip() if match else _fallback_title(path)


def _fallback_title(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").strip().title()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()
