"""Text out of the file formats a website's knowledge comes in: HTML (visible text) and PDF (text layer)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path


class UnreadableFile(Exception):
    """The file could not be turned into text (corrupt, encrypted, not what its name says)."""


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
            self.title += data
        elif not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(raw: str) -> tuple[str, str]:
    """(title, text): headings become Markdown headings so that chunks keep their section path."""
    parser = _VisibleText()
    parser.feed(raw)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return parser.title.strip(), text


def pdf_to_text(path: Path) -> tuple[str, str]:
    """(title, text) from a PDF's text layer; scanned pages without one yield nothing."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise UnreadableFile("encrypted PDF")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = str((reader.metadata.title if reader.metadata else None) or "")
    except (PdfReadError, OSError, ValueError, KeyError) as exc:
        raise UnreadableFile(f"unreadable PDF: {type(exc).__name__}") from exc
    text = "\n\n".join(page for page in pages if page)
    if not text:
        raise UnreadableFile("no text layer (a scanned PDF needs OCR first)")
    return title.strip(), text
