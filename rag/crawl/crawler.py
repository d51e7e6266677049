"""The crawl: from start pages (following links within the site) or sitemaps to a snapshot folder.

Politeness first: robots.txt is read once per origin before anything else is asked of it (unreadable for a
server error: nothing is asked of that host), its Crawl-delay spaces the requests to that origin (capped at
CRAWL_DELAY_MAX), and at most CRAWL_CONCURRENCY requests are in flight. Re-crawls ask conditionally (ETag,
Last-Modified), so an unchanged page costs one short 304. Redirects are followed by hand, within the site,
each hop checked against robots.txt. Everything skipped is logged (`crawl_url_skipped`) and counted by
reason.

A crawl is complete when every start URL (and every sitemap it leads to) could be read: only then are pages
it did not meet removed from the snapshot. A page that fails for a passing reason (timeout, unreachable,
5xx, 429) keeps its previous version."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import httpx
import structlog

from rag.crawl.html import HtmlPage, decode, read_html
from rag.crawl.robots import ROBOTS_MAX_BYTES, HostRules
from rag.crawl.sitemaps import SITEMAP_MAX_BYTES, BadSitemap, looks_like_sitemap, parse_sitemap
from rag.crawl.snapshot import PageRecord, Snapshot
from rag.crawl.urls import check_start_url, normalize, origin_of, site_of
from rag.settings import RagSettings

log = structlog.get_logger(__name__)

MAX_REDIRECTS = 5
MAX_SITEMAP_LEVELS = 3  # an index of indexes of sitemaps is already unusual
MAX_SITEMAPS = 1000
MAX_ERRORS = 200
_MB = 2**20
_DRAIN_MAX_BYTES = 64 * 1024
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
# Types servers give to files of any kind: the first bytes decide.
_UNLABELLED = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
# Links that are certainly not pages are not asked for at all (one request less each on the owner's server).
_NOT_PAGES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".ico", ".bmp", ".tif", ".tiff", ".avif",
    ".mp3", ".mp4", ".m4a", ".wav", ".ogg", ".webm", ".mov", ".avi",
    ".zip", ".gz", ".tgz", ".rar", ".7z", ".tar", ".dmg", ".exe", ".msi", ".apk",
    ".css", ".js", ".json", ".woff", ".woff2", ".ttf", ".eot",
    ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".csv",
)  # fmt: skip
# Reasons that are a page's own choice or the crawl's bounds, not a fault: logged, not listed as errors.
_ROUTINE = frozenset({"robots", "other_site", "max_pages", "max_depth", "duplicate", "noindex", "not_html"})
# Skips of a URL that was read all the same (its links followed): not a reason to call a crawl incomplete.
_READ_FINE = frozenset({"duplicate", "noindex", "no_content"})
# Failures that say nothing about whether the page still exists: its previous version is kept.
_PASSING = frozenset({"timeout", "unreachable", "http_5xx", "http_429"})

Kind = Literal["start", "page", "sitemap"]


@dataclass(frozen=True, slots=True)
class CrawlProgress:
    done: int  # URLs finished (saved, unchanged or skipped)
    queued: int  # URLs waiting
    pages: int  # pages saved or confirmed unchanged so far
    skipped: int
    url: str  # the URL just finished


@dataclass
class CrawlReport:
    pages: int = 0  # pages this crawl saved or found unchanged: new + changed + unchanged
    new: int = 0
    changed: int = 0
    unchanged: int = 0  # answered 304, or fetched with the same content and title
    kept: int = (
        0  # not fetched this time (passing failure, or an incomplete crawl): the previous version kept
    )
    removed: int = 0  # gone from the site, so gone from the snapshot
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> URLs
    errors: list[tuple[str, str]] = field(default_factory=list)  # (url, reason), the first MAX_ERRORS
    complete: bool = True  # every start URL and sitemap read: pages not met were removed
    requests: int = 0  # HTTP requests made, robots.txt and redirects included
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Item:
    url: str
    depth: int
    site: str  # the site of the start URL it came from: links elsewhere are not followed
    kind: Kind
    level: int = 0  # sitemaps: how deep in indexes


@dataclass(frozen=True, slots=True)
class _Fetched:
    url: str  # the final URL, after redirects
    status: int  # 200 or 304
    media_type: str
    charset: str | None
    body: bytes
    etag: str | None
    last_modified: str | None


class _Skip(Exception):
    """One URL is given up, for `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class _Host:
    """One origin: its robots.txt (read once) and when the next request to it may start."""

    rules: HostRules | None = None
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_at: float = 0.0


async def crawl(
    urls: list[str],
    snapshot_dir: Path,
    settings: RagSettings,
    progress: Callable[[CrawlProgress], None] | None = None,
) -> CrawlReport:
    """Crawl `urls` (start pages or sitemaps) into the snapshot folder; ValueError for a URL that is not
    http(s), SnapshotInUse while another crawl writes the folder."""
    starts = list(dict.fromkeys(check_start_url(url) for url in urls))
    if not starts:
        raise ValueError("no URL to crawl: give start or sitemap URLs (KNOWLEDGE_URLS)")
    started = time.perf_counter()
    snapshot = Snapshot(snapshot_dir)
    with snapshot.locked():
        previous = await asyncio.to_thread(snapshot.load)
        async with httpx.AsyncClient(
            trust_env=False,  # no proxy or .netrc from the environment: only the owner's site is asked
            follow_redirects=False,  # followed by hand: within the site, each hop checked against robots.txt
            timeout=httpx.Timeout(settings.crawl_timeout),
            limits=httpx.Limits(
                max_connections=settings.crawl_concurrency,
                max_keepalive_connections=settings.crawl_concurrency,
            ),
            headers={
                "User-Agent": settings.crawl_user_agent,
                "Accept": "text/html,application/xhtml+xml,application/pdf,application/xml;q=0.9,*/*;q=0.5",
            },
        ) as client:
            crawler = _Crawler(settings, snapshot, previous, client, progress)
            await crawler.run(starts)
        records = crawler.final_records()
        await asyncio.to_thread(snapshot.commit, records)
        report = crawler.report
        report.removed = len(previous.keys() - records.keys())
        report.pages = report.new + report.changed + report.unchanged
        await asyncio.to_thread(snapshot.note_crawl, time.time(), report.complete, report.pages)
    report.skipped = dict(sorted(crawler.skipped.items()))
    report.seconds = time.perf_counter() - started
    log.info(
        "crawl_finished",
        starts=starts,
        pages=report.pages,
        new=report.new,
        changed=report.changed,
        unchanged=report.unchanged,
        kept=report.kept,
        removed=report.removed,
        skipped=report.skipped,
        complete=report.complete,
        requests=report.requests,
        seconds=round(report.seconds, 3),
    )
    return report


class _Crawler:
    def __init__(
        self,
        settings: RagSettings,
        snapshot: Snapshot,
        previous: dict[str, PageRecord],
        client: httpx.AsyncClient,
        progress: Callable[[CrawlProgress], None] | None,
    ) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self.previous = previous
        self.client = client
        self.progress = progress
        self.user_agent = settings.crawl_user_agent
        self.page_cap = int(settings.crawl_max_page_mb * _MB)
        self.report = CrawlReport()
        self.skipped: Counter[str] = Counter()
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.seen: set[str] = set()  # every URL queued or skipped, so each is decided once
        self.records: dict[str, PageRecord] = {}  # this crawl's pages, by their (canonical) URL
        self.claimed: set[str] = set()  # URLs of pages being saved right now or already saved
        # The address each stored page was fetched from: a fetch of it asks conditionally.
        self.by_source = {record.source or url: url for url, record in previous.items()}
        self.hosts: dict[str, _Host] = {}
        self.page_slots = settings.crawl_max_pages
        self.sitemaps = 0
        self.done = 0

    # --- the frontier

    async def run(self, starts: list[str]) -> None:
        for url in starts:
            self.seen.add(url)
            self.page_slots -= 1  # given back if it is a sitemap
            self.queue.put_nowait(_Item(url, 0, site_of(url), "start"))
        workers = [asyncio.create_task(self._worker()) for _ in range(self.settings.crawl_concurrency)]
        joined = asyncio.create_task(self.queue.join())
        try:
            # A worker only ends by a bug: stop the crawl with it (nothing is committed) instead of waiting
            # for its URL forever.
            await asyncio.wait([joined, *workers], return_when=asyncio.FIRST_COMPLETED)
            for worker in workers:
                if worker.done() and not worker.cancelled() and (error := worker.exception()) is not None:
                    raise error
        finally:
            for task in (joined, *workers):
                task.cancel()
            await asyncio.gather(joined, *workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self._visit(item)
            except _Skip as skip:
                self._skip(item.url, skip.reason, skip.detail)
                self._after_failure(item, skip.reason)
            finally:
                self.queue.task_done()
                self.done += 1
                if self.progress is not None:
                    self.progress(
                        CrawlProgress(
                            self.done, self.queue.qsize(), len(self.records), self.skipped.total(), item.url
                        )
                    )

    def _enqueue(self, url: str, parent: _Item, kind: Kind) -> None:
        if url in self.seen:
            return
        self.seen.add(url)
        if site_of(url) != parent.site:
            self._skip(url, "other_site")
        elif kind == "page" and urlsplit(url).path.lower().endswith(_NOT_PAGES):
            self._skip(url, "not_html")
        elif kind == "page" and parent.kind != "sitemap" and parent.depth + 1 > self.settings.crawl_max_depth:
            self._skip(url, "max_depth")
        elif not self._allowed_if_known(url):
            self._skip(url, "robots")
        elif kind == "sitemap" and (parent.level + 1 > MAX_SITEMAP_LEVELS or self.sitemaps >= MAX_SITEMAPS):
            self._skip(url, "bad_sitemap", "too many sitemaps or levels of sitemap indexes")
        elif kind == "page" and self.page_slots <= 0:
            self._skip(url, "max_pages")
        else:
            if kind == "page":
                self.page_slots -= 1
            else:
                self.sitemaps += 1
            # Pages listed in a sitemap are depth 0 and their links are not followed: the sitemap is the list.
            depth = 0 if parent.kind == "sitemap" else parent.depth + 1
            level = parent.level + 1 if kind == "sitemap" else 0
            self.queue.put_nowait(_Item(url, depth, parent.site, kind, level))

    def _enqueue_canonical(self, url: str, copy: _Item) -> None:
        if url in self.seen:
            return
        self.seen.add(url)
        if not self._allowed_if_known(url):
            self._skip(url, "robots")
        elif self.page_slots <= 0:
            self._skip(url, "max_pages")
        else:
            self.page_slots -= 1
            # As deep as the copy, and its links are the copy's: already followed.
            self.queue.put_nowait(_Item(url, copy.depth, copy.site, "page"))

    def _follow(self, item: _Item, links: list[str] | tuple[str, ...]) -> None:
        if item.kind == "start" or (item.kind == "page" and item.depth > 0):
            for link in links:
                self._enqueue(link, item, "page")

    def _skip(self, url: str, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        if reason in _ROUTINE:
            log.info("crawl_url_skipped", url=url, reason=reason)
            return
        log.warning("crawl_url_skipped", url=url, reason=reason, detail=detail or None)
        if len(self.report.errors) < MAX_ERRORS:
            self.report.errors.append((url, reason))

    def _after_failure(self, item: _Item, reason: str) -> None:
        if item.kind != "page" and reason not in _READ_FINE:
            # What this start URL or sitemap leads to is unknown: the crawl cannot tell what is gone.
            self.report.complete = False
        if reason not in _PASSING:
            return
        key = self.by_source.get(item.url, item.url)
        record = self.previous.get(key)
        if record is not None and key not in self.claimed:
            self.claimed.add(key)
            self.records[key] = record
            self.report.kept += 1
            self._follow(item, record.links)

    def final_records(self) -> dict[str, PageRecord]:
        if self.report.complete:
            return dict(self.records)
        # An incomplete crawl removes nothing: the pages it did not meet may well still be there.
        carried = {url: record for url, record in self.previous.items() if url not in self.records}
        self.report.kept += len(carried)
        return {**carried, **self.records}

    # --- one URL

    async def _visit(self, item: _Item) -> None:
        if item.url in self.claimed:
            raise _Skip("duplicate")
        fetched = await self._fetch(item)
        if item.kind == "sitemap" or (
            item.kind == "start"
            and fetched.status == 200
            and looks_like_sitemap(fetched.body, fetched.media_type, fetched.url)
        ):
            if item.kind == "start":
                self.page_slots += 1
            self._read_sitemap(item, fetched)
            return
        if fetched.status == 304:
            key = self.by_source[fetched.url]
            if key in self.claimed:
                raise _Skip("duplicate")
            self.claimed.add(key)
            record = self.previous[key]
            self.records[key] = record
            self.report.unchanged += 1
            self._follow(item, record.links)
            return
        await self._save(item, fetched)

    def _read_sitemap(self, item: _Item, fetched: _Fetched) -> None:
        try:
            sitemap = parse_sitemap(fetched.body)
        except BadSitemap as exc:
            raise _Skip("bad_sitemap", str(exc)) from None
        kind: Kind = "sitemap" if sitemap.kind == "sitemapindex" else "page"
        parent = replace(item, kind="sitemap")
        for loc in sitemap.locs:
            url = normalize(loc, fetched.url)
            if url is None:
                self._skip(loc, "bad_url")
            else:
                self._enqueue(url, parent, kind)

    async def _save(self, item: _Item, fetched: _Fetched) -> None:
        kind = _content_kind(fetched.media_type, fetched.body)
        key = fetched.url
        links: list[str] = []
        if kind == "pdf":
            if not fetched.body[:1024].lstrip().startswith(b"%PDF-"):
                raise _Skip("bad_pdf", "labelled a PDF, but is not one")
            content, suffix, title = fetched.body, ".pdf", _title_from_url(fetched.url)
        elif kind == "html":
            page = await self._read_html(fetched)
            links = page.links
            self._follow(item, links)
            if page.canonical and page.canonical != fetched.url and site_of(page.canonical) == item.site:
                # A copy: the page is kept as its canonical URL serves it, fetched as such (once), so that
                # its content, validators and links always come from the same address.
                self._enqueue_canonical(page.canonical, item)
                raise _Skip("duplicate", f"a copy of {page.canonical}")
            if page.noindex:
                raise _Skip("noindex")
            if not page.markdown:
                raise _Skip("no_content", "no main content found")
            content, suffix, title = page.markdown.encode(), ".md", page.title
        else:
            raise _Skip("not_html", fetched.media_type)
        if key in self.claimed:
            raise _Skip("duplicate")
        self.claimed.add(key)
        sha256 = hashlib.sha256(content).hexdigest()
        before = self.previous.get(key)
        if before is not None and before.sha256 == sha256 and before.file.endswith(suffix):
            # Same content (a server without validators, or one that changed only its boilerplate): the
            # file stays as it is.
            record = replace(
                before,
                title=title,
                source=fetched.url,
                links=tuple(links),
                etag=fetched.etag,
                last_modified=fetched.last_modified,
            )
            if title == before.title:
                self.report.unchanged += 1
            else:
                self.report.changed += 1
        else:
            name = await asyncio.to_thread(self.snapshot.write_page, key, suffix, content)
            record = PageRecord(
                file=name,
                title=title,
                sha256=sha256,
                fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
                source=fetched.url,
                links=tuple(links),
                etag=fetched.etag,
                last_modified=fetched.last_modified,
            )
            if before is None:
                self.report.new += 1
            else:
                self.report.changed += 1
        self.records[key] = record

    async def _read_html(self, fetched: _Fetched) -> HtmlPage:
        text = decode(fetched.body, fetched.charset)
        try:
            return await asyncio.to_thread(read_html, text, fetched.url)
        except Exception as exc:  # noqa: BLE001 - trafilatura and lxml on outside HTML: this page only
            raise _Skip("extract_failed", f"{type(exc).__name__}: {exc}") from None

    # --- HTTP

    async def _fetch(self, item: _Item) -> _Fetched:
        """GET `item.url`, following redirects within the site; a 200 or a 304, else _Skip."""
        url = item.url
        chain = [url]
        while True:
            rules = await self._rules(origin_of(url))
            if rules.rules is None:
                raise _Skip("robots_unavailable", "robots.txt could not be read")
            if not rules.allows(url, self.user_agent):
                raise _Skip("robots")
            await self._wait_turn(origin_of(url), rules.delay)
            location = await self._request(item, url)
            if isinstance(location, _Fetched):
                return location
            target = normalize(location, url)
            if target is None:
                raise _Skip("bad_redirect", location[:200])
            if site_of(target) != item.site:
                raise _Skip("other_site", f"redirected to {target}")
            if target in chain:
                raise _Skip("redirect_loop", " -> ".join(chain))
            if len(chain) > MAX_REDIRECTS:
                raise _Skip("too_many_redirects", " -> ".join(chain))
            if target in self.claimed:
                raise _Skip("duplicate")
            chain.append(target)
            self.seen.add(target)
            url = target

    async def _request(self, item: _Item, url: str) -> _Fetched | str:
        """One GET: the response, or the Location it redirects to."""
        headers = {}
        key = self.by_source.get(url)
        record = self.previous.get(key) if key is not None and item.kind != "sitemap" else None
        if record is not None:
            if record.etag:
                headers["If-None-Match"] = record.etag
            if record.last_modified:
                headers["If-Modified-Since"] = record.last_modified
        self.report.requests += 1
        try:
            # One deadline for the whole exchange: httpx's own timeout is per read, and a server dripping
            # a byte a second would never hit it.
            async with (
                asyncio.timeout(self.settings.crawl_timeout),
                self.client.stream("GET", url, headers=headers) as response,
            ):
                return await self._response(item, url, response, conditional=record is not None)
        except TimeoutError:
            raise _Skip("timeout", f"no full answer within {self.settings.crawl_timeout}s") from None
        except httpx.TimeoutException as exc:
            raise _Skip("timeout", type(exc).__name__) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, UnicodeError) as exc:
            raise _Skip("unreachable", f"{type(exc).__name__}: {exc}") from None

    async def _response(
        self, item: _Item, url: str, response: httpx.Response, conditional: bool
    ) -> _Fetched | str:
        status = response.status_code
        if status != 200:
            await _drain(response)
        if status in (301, 302, 303, 307, 308):
            location: str = response.headers.get("location", "")
            if not location:
                raise _Skip("bad_redirect", f"HTTP {status} without a Location")
            return location
        etag = response.headers.get("etag")
        last_modified = response.headers.get("last-modified")
        if status == 304 and conditional:
            return _Fetched(url, 304, "", None, b"", etag, last_modified)
        if status != 200:
            raise _Skip(_status_reason(status), f"HTTP {status}")
        content_type = response.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        expected = _HTML_TYPES | _PDF_TYPES | _UNLABELLED
        if item.kind == "page" and media_type not in expected:
            raise _Skip("not_html", media_type)  # known before a byte of the body is read
        # A start URL or sitemap may be a sitemap: those are allowed the protocol's size.
        cap = self.page_cap
        if item.kind != "page" and media_type not in _HTML_TYPES | _PDF_TYPES:
            cap = max(cap, SITEMAP_MAX_BYTES)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _Skip("too_large", f"{declared} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:
                raise _Skip("too_large", f"more than {cap} bytes")
        return _Fetched(url, 200, media_type, response.charset_encoding, bytes(body), etag, last_modified)

    async def _rules(self, origin: str) -> HostRules:
        host = self.hosts.setdefault(origin, _Host())
        if host.rules is not None:
            return host.rules
        async with host.reading:
            if host.rules is None:
                host.rules = await self._read_robots(origin)
                host.next_at = time.monotonic() + host.rules.delay
            return host.rules

    def _allowed_if_known(self, url: str) -> bool:
        """robots.txt's answer where it has been read already (the rest is checked before fetching), so
        that a disallowed link takes no place in CRAWL_MAX_PAGES."""
        host = self.hosts.get(origin_of(url))
        return host is None or host.rules is None or host.rules.allows(url, self.user_agent)

    async def _wait_turn(self, origin: str, delay: float) -> None:
        if delay <= 0:
            return
        host = self.hosts[origin]
        async with host.turn:
            wait = host.next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            host.next_at = time.monotonic() + delay

    async def _read_robots(self, origin: str) -> HostRules:
        """The origin's robots.txt (RFC 9309): a 4xx allows everything; a 5xx or no answer allows nothing."""
        url = f"{origin}/robots.txt"
        for _ in range(MAX_REDIRECTS + 1):
            self.report.requests += 1
            body = bytearray()
            try:
                async with (
                    asyncio.timeout(self.settings.crawl_timeout),
                    self.client.stream("GET", url) as response,
                ):
                    status = response.status_code
                    location = response.headers.get("location")
                    if not 200 <= status < 300:
                        await _drain(response)
                    if 200 <= status < 300:
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) >= ROBOTS_MAX_BYTES:
                                break  # RFC 9309: what follows may be ignored
            except (
                TimeoutError,
                httpx.HTTPError,
                httpx.InvalidURL,
                httpx.StreamError,
                OSError,
                UnicodeError,
            ) as exc:
                return self._robots_unavailable(origin, f"{type(exc).__name__}: {exc}")
            if status in (301, 302, 303, 307, 308) and location:
                target = normalize(location, url)
                if target is None:
                    return self._robots_unavailable(origin, f"redirected to {location[:200]}")
                url = target
                continue
            if 200 <= status < 300:
                text = bytes(body[:ROBOTS_MAX_BYTES]).decode("utf-8", errors="replace")
                return HostRules.parse(text, self.user_agent, self.settings.crawl_delay_max, origin)
            if 400 <= status < 500:
                return HostRules.allow_all()
            return self._robots_unavailable(origin, f"HTTP {status}")
        return self._robots_unavailable(origin, "too many redirects")

    def _robots_unavailable(self, origin: str, detail: str) -> HostRules:
        # Logged once here; each URL of the origin is then skipped (and counted) as robots_unavailable.
        log.warning("crawl_robots_unavailable", origin=origin, detail=detail)
        if len(self.report.errors) < MAX_ERRORS:
            self.report.errors.append((f"{origin}/robots.txt", "robots_unavailable"))
        return HostRules.disallow_all()


async def _drain(response: httpx.Response) -> None:
    """Read a short unwanted body (a redirect's, a 304's, an error page's) to its end: httpx closes a
    connection whose response was left unread, and a new connection for every request made a re-crawl of
    200 pages take twice as long."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= _DRAIN_MAX_BYTES:
        await response.aread()


def _status_reason(status: int) -> str:
    if status in (404, 410, 429):
        return f"http_{status}"
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return "http_other"


def _content_kind(media_type: str, body: bytes) -> Literal["html", "pdf", "other"]:
    if media_type in _HTML_TYPES:
        return "html"
    if media_type in _PDF_TYPES:
        return "pdf"
    if media_type in _UNLABELLED:
        head = body[:1024].lstrip().lower()
        if head.startswith(b"%pdf-"):
            return "pdf"
        if head.startswith((b"<!doctype html", b"<html")):
            return "html"
    return "other"


def _title_from_url(url: str) -> str:
    """A PDF's title until the loader reads its own: the file name, as a person would say it."""
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem.replace("-", " ").replace("_", " ").strip() or url
