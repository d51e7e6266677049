"""Text out of the file formats a website's knowledge comes in: HTML (visible text) and PDF (text layer)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path


class UnreadableFile(Exception):
    """The file could not be turned into text (corrupt, encrypted, too large, not what its name says)."""


# Content a visitor never sees in the page.
_INVISIBLE = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}
_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "nav",
    "li",
    "ul",
    "ol",
    "table",
    "tr",
    "br",
    "hr",
    "blockquote",
    "pre",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "form",
    "address",
}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0  # characters in parts
        self.title = ""
        self._skipping: list[str] = []  # open tags whose content is not shown
        self._in_title = False
        self._heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        hidden = (
            "hidden" in attributes
            or attributes.get("aria-hidden") == "true"
            or re.search(r"display\s*:\s*none", attributes.get("style") or "")
        )
        if self._skipping or tag in _INVISIBLE or hidden:
            if tag not in _VOID:
                self._skipping.append(tag)
            self._in_title = tag == "title"
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = int(tag[1])
            self.parts.append("\n\n" + "#" * self._heading + " ")
        elif tag in _BLOCKS:
            self.parts.append("\n\n" if tag != "li" else "\n- ")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.pop()
            self._in_title = False
            return
        if self._heading is not None and tag == f"h{self._heading}":
            self._heading = None
            self.parts.append("\n\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title + data)[:_MAX_TITLE]
        elif not self._skipping:
            piece = re.sub(r"\s+", " ", data)
            self.parts.append(piece)
            self.length += len(piece)


_MAX_TITLE = 500
_FEED = 1 << 20  # characters handed to the parser at a time, so that a page over the limit stops early


def html_to_text(raw: str, max_chars: int | None = None) -> tuple[str, str]:
    """(title, text): headings become Markdown headings so that chunks keep their section path. A page
    whose visible text passes `max_chars` is refused as soon as it does (the parser is slow: ~0.5 MB/s)."""
    parser = _VisibleText()
    for start in range(0, len(raw), _FEED):
        parser.feed(raw[start : start + _FEED])
        if max_chars is not None and parser.length > max_chars:
            raise UnreadableFile(too_long(max_chars))
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return parser.title.strip(), text


def pdf_to_text(path: Path, max_chars: int) -> tuple[str, str]:
    """(title, text) from a PDF's text layer; scanned pages without one yield nothing.

    Run it through `rag.isolated.Parsers`: pypdf raises more than its documented errors on damaged files
    (`LimitReachedError` on a stream inflating past its limit, `AttributeError` and others on mangled
    objects), and its memory and time on a hostile file are bounded only by the child process."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise UnreadableFile("encrypted PDF")
        pages: list[str] = []
        length = 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            length += len(text)
            if length > max_chars:
                raise UnreadableFile(too_long(max_chars))
            pages.append(text)
        title = pdf_title(str((reader.metadata.title if reader.metadata else None) or ""))
    except UnreadableFile:
        raise
    except Exception as exc:  # any parser failure is this one file's problem, never the ingest's
        raise UnreadableFile(f"unreadable PDF: {type(exc).__name__}") from exc
    text = "\n\n".join(page for page in pages if page)
    if not text:
        raise UnreadableFile("no text layer (a scanned PDF needs OCR first)")
    return title.strip(), text


# What authoring tools put in a PDF's Title when its author did not: not a title a visitor should see.
_PLACEHOLDER_TITLES = frozenset(
    {"untitled", "untitled document", "document", "title", "slide 1", "presentation"}
)
_TOOL_PREFIX = re.compile(r"^microsoft (?:word|powerpoint|excel)\s*-\s*", re.IGNORECASE)
_FILE_SUFFIX = re.compile(r"\.(?:docx?|pdf|pptx?|xlsx?|odt|odp|rtf|txt|indd|pages|key)$", re.IGNORECASE)


def pdf_title(raw: str) -> str:
    """A PDF's Title as a person would read it ("Microsoft Word - Warranty.docx" is "Warranty"), or "" when
    it is a tool's placeholder, so the caller falls back to a better one."""
    title = _FILE_SUFFIX.sub("", _TOOL_PREFIX.sub("", " ".join(raw.split())))
    return "" if title.lower() in _PLACEHOLDER_TITLES else title


def too_long(max_chars: int) -> str:
    return f"more than {max_chars:,} characters of text (KNOWLEDGE_MAX_TEXT_CHARS): split the file"
