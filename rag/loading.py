"""Finding and reading the documents of the knowledge folder."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog

from rag.formats import UnreadableFile, too_long
from rag.isolated import ParserFailed, Parsers
from rag.markdown import heading
from rag.settings import RagSettings

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "ReadLimits",
    "SourceFile",
    "UnreadableFile",
    "load",
    "scan",
]

log = structlog.get_logger(__name__)

SUPPORTED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf"})


# Control characters that never occur in text (tab, newlines and form feed do): bytes of a binary file.
_BINARY_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f") + b"\x7f"
_MB = 2**20


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What one knowledge file may cost: a file is outside input, and one file must never be able to stop an
    ingest, exhaust the service's memory or hold it for minutes."""

    max_file_bytes: int = 25 * _MB
    max_text_chars: int = 2_000_000
    parser_seconds: float = 60.0
    parser_memory_bytes: int = 1024 * _MB

    @classmethod
    def of(cls, settings: RagSettings) -> ReadLimits:
        return cls(
            max_file_bytes=int(settings.knowledge_max_file_mb * _MB),
            max_text_chars=settings.knowledge_max_text_chars,
            parser_seconds=settings.parser_timeout,
            parser_memory_bytes=settings.parser_memory_mb * _MB,
        )

    def parsers(self) -> Parsers:
        return Parsers(self.parser_memory_bytes, self.parser_seconds)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A knowledge file found on disk: a file of the knowledge folder, named by its path relative to it, or a
    page of the owner's website kept by a crawl, named by its address and titled as the page is."""

    path: Path
    relative: str  # the path below its folder
    sha256: str
    url: str | None = None
    title: str | None = None

    @property
    def name(self) -> str:
        """What names it in the store, the manifest and an answer's sources."""
        return self.url or self.relative


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    title: str
    text: str
    is_markdown: bool


def scan(knowledge_dir: Path) -> list[SourceFile]:
    """List the supported files with their content hashes (cheap: no parsing, no embedding).

    Only files that resolve inside the folder count: a link to `/etc/passwd` or `/proc/self/environ` would
    otherwise publish that file to every visitor."""
    if not knowledge_dir.is_dir():
        raise FileNotFoundError(f"knowledge folder not found: {knowledge_dir}")
    root = knowledge_dir.resolve()
    found: list[SourceFile] = []
    for path in sorted(knowledge_dir.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(knowledge_dir).parts):
            continue
        relative = path.relative_to(knowledge_dir).as_posix()
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            log.info("knowledge_file_skipped", source=relative, reason="unsupported file type")
            continue
        if not path.resolve().is_relative_to(root):
            log.warning("knowledge_file_skipped", source=relative, reason="a link to outside the folder")
            continue
        try:
            found.append(SourceFile(path=path, relative=relative, sha256=_sha256(path)))
        except OSError as exc:  # unreadable (permissions) or gone since the listing
            log.warning("knowledge_file_skipped", source=relative, reason=f"cannot be read: {exc.strerror}")
    return found


def load(source: SourceFile, limits: ReadLimits = ReadLimits(), parsers: Parsers | None = None) -> Document:
    """The document's text; raises `UnreadableFile` for a file that cannot be turned into text, is larger
    than the limits allow, or is not text at all. PDF and HTML are parsed by `parsers` (a bounded worker
    process; pass one to reuse it over many files)."""
    if parsers is None:
        with limits.parsers() as own:
            return load(source, limits, own)
    suffix = source.path.suffix.lower()
    try:
        if suffix == ".pdf":
            title, text = parsers.pdf(_checked(source, limits), limits.max_text_chars)
            # The PDF's own title first: a crawled PDF's given title is only its file name.
            title = title or source.title or _fallback_title(source.path)
            document = Document(source.name, title, text, False)
        elif suffix in {".html", ".htm"}:
            title, text = parsers.html(_decode(_read(_checked(source, limits))), limits.max_text_chars)
            # Headings are Markdown now, so the chunker keeps the section path.
            title = source.title or title or _title(text, source.path)
            document = Document(source.name, title, text, is_markdown=True)
        else:
            text = _decode(_read(_checked(source, limits)))
            is_markdown = suffix in {".md", ".markdown"}
            title = source.title or _title(text, source.path)
            document = Document(source.name, title, text, is_markdown=is_markdown)
    except UnreadableFile:
        raise
    except ParserFailed as exc:
        raise UnreadableFile(str(exc)) from exc
    except OSError as exc:  # unreadable, or changed since the scan
        raise UnreadableFile(f"cannot be read: {exc.strerror or exc}") from exc
    if len(document.text) > limits.max_text_chars:
        raise UnreadableFile(too_long(limits.max_text_chars))
    return document


def _checked(source: SourceFile, limits: ReadLimits) -> Path:
    """The file's real path, once more confirmed inside the folder (it may have changed since the scan)
    and within the size limit, which is checked before a byte of it is read."""
    path = source.path.resolve()
    root = source.path.parents[len(Path(source.relative).parts) - 1].resolve()
    if not path.is_relative_to(root):
        raise UnreadableFile("a link to outside the folder")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise UnreadableFile(
            f"{size / _MB:.1f} MB, over the {limits.max_file_bytes / _MB:g} MB limit (KNOWLEDGE_MAX_FILE_MB)"
        )
    return path


def _read(path: Path) -> bytes:
    """The file's bytes, read only if it is still a plain file (a swapped-in link or FIFO is refused)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UnreadableFile("not a regular file")
        return handle.read()


def _decode(raw: bytes) -> str:
    """UTF-8 (or, failing that, Windows-1252, still common in exported text); bytes that are not text at all
    (a binary renamed `.md`) are refused rather than embedded as noise."""
    if b"\x00" in raw:
        raise UnreadableFile("not a text file (binary content)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise UnreadableFile("not a text file (neither UTF-8 nor Windows-1252)") from None
    controls = len(raw) - len(raw.translate(None, _BINARY_BYTES))
    if controls > 8 + len(raw) // 200:
        raise UnreadableFile("not a text file (binary content)")
    return text.replace("\r\n", "\n").lstrip("\ufeff")


def _title(text: str, path: Path) -> str:
    """The first level-1 heading, else a title from the file name."""
    for line in text.split("\n"):
        found = heading(line) if line.startswith("#") else None
        if found is not None and found[0] == 1:
            return found[1]
    return _fallback_title(path)


def _fallback_title(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").strip().title()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()
