"""One fetched HTML page: its main content as Markdown (trafilatura), its title, and where it links."""

from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass
from html.parser import HTMLParser

from rag.crawl.urls import normalize

# trafilatura parses with one module-level lxml parser, and lxml parsers must not be used by two threads at
# once: concurrent extract() calls have crashed processes (SIGSEGV, adbar/trafilatura#840). One extraction
# at a time in this process; the GIL left little to gain from more anyway.
_EXTRACTING = threading.Lock()
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HtmlPage:
    markdown: str  # empty: no main content found
    title: str
    links: list[str]  # normalized, in page order, each once (any site: the crawler decides)
    canonical: str | None  # normalized <link rel=canonical>, if the page names one
    noindex: bool  # <meta name=robots content=noindex>: not to be kept
    nofollow: bool  # <meta name=robots content=nofollow>: its links are not to be followed


class _Head(HTMLParser):
    """What the crawler needs besides the text: links (not rel=nofollow), <base>, canonical, title, robots."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None
        self.canonical: str | None = None
        self.og_title: str | None = None
        self.robots: set[str] = set()
        self.title: list[str] = []
        self._in_title = False
        self._title_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        rel = set(a.get("rel", "").lower().split())
        if tag in ("a", "area") and a.get("href") and "nofollow" not in rel:
            self.hrefs.append(a["href"])
        elif tag == "base" and self.base is None and a.get("href"):
            self.base = a["href"]
        elif tag == "link" and "canonical" in rel and self.canonical is None and a.get("href"):
            self.canonical = a["href"]
        elif tag == "meta":
            name = a.get("name", "").lower()
            if name == "robots":
                self.robots |= {part.strip().lower() for part in a.get("content", "").split(",")}
            elif a.get("property", "").lower() == "og:title" and self.og_title is None:
                self.og_title = a.get("content", "").strip() or None
        elif tag == "title" and not self._title_done:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self._title_done = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)


def decode(body: bytes, charset: str | None) -> str:
    """The page's text: the charset the server named, else the one the page declares, else UTF-8."""
    for candidate in (charset, _declared_charset(body), "utf-8"):
        if candidate:
            try:
                codecs.lookup(candidate)
            except LookupError:
                continue
            return body.decode(candidate, errors="replace")
    return body.decode("utf-8", errors="replace")


def _declared_charset(body: bytes) -> str | None:
    found = _META_CHARSET.search(body[:4096])
    return found.group(1).decode("ascii") if found else None


def read_html(text: str, url: str) -> HtmlPage:
    """Parse a page fetched from `url` (CPU work: call it from a thread)."""
    head = _Head()
    head.feed(text)
    head.close()
    base = normalize(head.base, url) if head.base else None
    base = base or url
    links = list(dict.fromkeys(link for href in head.hrefs if (link := normalize(href, base))))
    canonical = normalize(head.canonical, base) if head.canonical else None
    noindex = bool(head.robots & {"noindex", "none"})
    nofollow = bool(head.robots & {"nofollow", "none"})
    markdown = "" if noindex else _main_content(text, url)
    title = " ".join("".join(head.title).split()) or head.og_title or _first_heading(markdown) or url
    return HtmlPage(markdown, title, [] if nofollow else links, canonical, noindex, nofollow)


def _main_content(text: str, url: str) -> str:
    # Imported here: trafilatura (with lxml, htmldate, dateparser) takes ~0.4 s to import, and only a crawl
    # needs it.
    import trafilatura

    # favor_precision: leave out what may be boilerplate (menus, banners, link lists) rather than keep it;
    # a page's own text is what the chatbot should cite.
    with _EXTRACTING:
        extracted = trafilatura.extract(
            text,
            url=url,
            output_format="markdown",
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            favor_precision=True,
        )
    return (extracted or "").strip()


def _first_heading(markdown: str) -> str | None:
    for line in markdown.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip() or None
    return None
