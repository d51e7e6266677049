"""Sitemaps (sitemaps.org): the page or sitemap URLs a `<urlset>` or `<sitemapindex>` lists, read safely."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from typing import Literal

# The protocol's own limits: 50 MB uncompressed and 50,000 URLs per file.
SITEMAP_MAX_BYTES = 50 * 2**20
SITEMAP_MAX_URLS = 50_000
# A DTD is what entity expansion ("billion laughs") and external entities need; a sitemap never has one.
_DTD = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_GZIP_MAGIC = b"\x1f\x8b"


class BadSitemap(ValueError):
    """Not a sitemap that can be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Sitemap:
    kind: Literal["urlset", "sitemapindex"]
    locs: list[str]


def looks_like_sitemap(body: bytes, content_type: str, url: str) -> bool:
    """Whether a response should be read as a sitemap rather than a page: gzip, or XML by its type, its
    name or its first bytes (servers label sitemaps text/plain or application/octet-stream too)."""
    if "html" in content_type or "pdf" in content_type:
        return False
    head = body[:512].lstrip()
    return (
        body.startswith(_GZIP_MAGIC)
        or "xml" in content_type
        or url.split("?", 1)[0].endswith((".xml", ".xml.gz"))
        or head.startswith(b"<?xml")
        or head.startswith((b"<urlset", b"<sitemapindex"))
    )


def gunzip(body: bytes, max_bytes: int = SITEMAP_MAX_BYTES) -> bytes:
    """Decompress a .gz body, refusing to inflate past `max_bytes` (a small file can inflate enormously)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadSitemap(f"broken gzip: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise BadSitemap(f"more than {max_bytes} bytes uncompressed")
    return out


def parse_sitemap(body: bytes, max_bytes: int = SITEMAP_MAX_BYTES) -> Sitemap:
    """The URLs a sitemap lists, in order, at most SITEMAP_MAX_URLS; BadSitemap when it is not one."""
    if body.startswith(_GZIP_MAGIC):
        body = gunzip(body, max_bytes)
    if len(body) > max_bytes:
        raise BadSitemap(f"more than {max_bytes} bytes")
    if _DTD.search(body):
        raise BadSitemap("has a DTD or entity declarations")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadSitemap(f"not well-formed XML: {exc}") from None
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise BadSitemap(f"root element is <{kind}>, not <urlset> or <sitemapindex>")
    child = "url" if kind == "urlset" else "sitemap"
    locs: list[str] = []
    for entry in root:
        if _local(entry.tag) != child:
            continue
        for field in entry:
            if _local(field.tag) == "loc" and field.text and field.text.strip():
                locs.append(field.text.strip())
                break
        if len(locs) >= SITEMAP_MAX_URLS:
            break
    return Sitemap("urlset" if kind == "urlset" else "sitemapindex", locs)


def _local(tag: str) -> str:
    """An element's name without its namespace (`{http://www.sitemaps.org/...}url` -> `url`)."""
    return tag.rsplit("}", 1)[-1]
