"""Web addresses as the crawler compares them: one spelling per page, and which site a page belongs to."""

from __future__ import annotations

import re
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that say where a visitor came from, not which page they asked for: two links that differ
# only in them are one page.
_TRACKING = re.compile(
    r"^(?:utm_[a-z0-9_]*|gclid|gbraid|wbraid|dclid|fbclid|msclkid|yclid|twclid|mc_cid|mc_eid|_ga|_gl)$",
    re.IGNORECASE,
)


def normalize(url: str, base: str | None = None) -> str | None:
    """`url` (relative to `base`) as one spelling: absolute, http(s) only, scheme and host in lower case,
    default port, credentials and fragment dropped, an empty path as "/", tracking parameters removed (the
    rest of the query kept as written). None when it is not an http(s) address one could fetch."""
    url = url.strip()
    try:
        joined = urljoin(base, url) if base else url
        parts = urlsplit(joined)
        port = parts.port  # raises ValueError for a port that is not a number or out of range
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host or any(c.isspace() for c in host):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    query = "&".join(
        piece
        for piece in parts.query.split("&")
        if piece and not _TRACKING.match(unquote(piece.split("=", 1)[0]))
    )
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def site_of(url: str) -> str:
    """The site a (normalized) URL belongs to: its host, `www.` folded, with a port other than the scheme's
    default. The scheme is left out on purpose: a site given as http:// normally redirects to https://."""
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme, port):
        host += f":{port}"
    return host


def origin_of(url: str) -> str:
    """scheme://host[:port]: what robots.txt and the crawl delay apply to (RFC 9309)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_start_url(url: str) -> str:
    """A start or sitemap URL from the owner, normalized; ValueError with a message that names it."""
    normalized = normalize(url)
    if normalized is None:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
    return normalized


def split_urls(value: str) -> list[str]:
    """Comma-separated URLs (KNOWLEDGE_URLS) as a list, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]
