"""A small company's website on 127.0.0.1, as the crawler meets real ones: a real HTTP server in a thread.

Every page carries the same boilerplate around its own text (a `<nav>` menu, a `<footer>`, a cookie-consent
banner), so a test can check that only the page's own text is kept. The site also has what crawls trip on:
robots.txt disallowing a folder (with a Crawl-delay), a sitemap index over two sitemaps (one gzipped), a
permanent redirect, a redirect loop, a 404, a 500, a link to another host, a PDF, an image and a zip, an
oversized page, a slow page, a `<link rel=canonical>` copy and a `?utm_source=` link. Pages answer
conditional requests (ETag, Last-Modified) with 304, can be changed or removed between two crawls, and every
request is kept, so a test can see what was fetched and what was answered 304.

`Website(generated=N)` serves a plain site of N pages instead, and `Website(generated=N, prose=True)` one of N
pages of distinct text with links between them (`fakes.site_prose`), as the crawl benchmark uses it."""

from __future__ import annotations

import gzip
import hashlib
import html
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.server import free_port
from fakes.site_prose import article
from fakes.thread_server import ThreadServer

# What every page repeats; none of it may reach the snapshot.
NAV_LABELS = ("Meet the team", "Book a repair", "Get fitted", "Prices and vouchers", "Riding journal")
FOOTER_TEXT = "Northwind Cycles Ltd is registered in England under company number 04417721"
COOKIE_TEXT = "We use cookies to remember your basket and measure visits"
BOILERPLATE = (*NAV_LABELS, FOOTER_TEXT, COOKIE_TEXT, "Accept all cookies", "Follow us on Mastodon")

# Each content page's own sentence: it must be in the snapshot, once per page.
CONTENT: dict[str, tuple[str, str, str]] = {
    # path: (title, heading, distinctive sentence)
    "/": (
        "Northwind Cycles",
        "Bicycles built and mended in Bristol",
        "Northwind Cycles has built and repaired bicycles on Gloucester Road since 1998.",
    ),
    "/about": (
        "About us",
        "The workshop team",
        "Our workshop employs eleven mechanics, four of whom trained at the frame builders of Bergamo.",
    ),
    "/services/repairs": (
        "Repairs",
        "Servicing and repairs",
        "A full service costs 89 pounds and takes two working days, parts extra.",
    ),
    "/services/fitting": (
        "Bike fitting",
        "Professional bike fitting",
        "A professional fitting session lasts ninety minutes and includes a saddle pressure map.",
    ),
    "/pricing": (
        "Prices",
        "Prices and gift vouchers",
        "Gift vouchers are sold in multiples of twenty-five pounds and never expire.",
    ),
    "/blog/winter-care": (
        "Winter care",
        "Looking after your bike in winter",
        "Rinse road salt off the chain after every winter ride, then dry and oil it.",
    ),
    "/contact": (
        "Contact",
        "Visiting the shop",
        "The shop is closed on Mondays and stays open until eight on Thursdays.",
    ),
}
PDF_SENTENCE = "Frames carry a lifetime warranty for their original owner."
PRIVATE_SENTENCE = "The staff rota and the alarm code are kept here."

# Paragraphs that make a page read like a page (extractors judge main content partly by its length).
_FILLER = (
    "We look after road bikes, touring bikes, cargo bikes and the children's bikes that come back every "
    "spring with flat tyres. Every bike that leaves the workshop has been test ridden by the mechanic who "
    "worked on it, and we write down what we did so that the next service starts where this one ended.",
    "Customers often ask what they can do themselves between visits. Keep the tyres pumped to the pressure "
    "printed on their sidewall, listen for new noises, and bring the bike in before a small problem becomes "
    "an expensive one. We are always happy to show you how to adjust brakes and gears at the counter.",
)


def tiny_pdf(text: str) -> bytes:
    """A minimal valid PDF with `text` in its text layer (Helvetica), its cross-reference offsets computed."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def page_html(
    title: str,
    heading: str,
    sentence: str,
    body_links: list[str],
    extra_head: str = "",
    sections: tuple[tuple[str, tuple[str, ...]], ...] | None = None,
) -> str:
    """A page as a CMS writes one: head, cookie banner, menu, the article, a footer. `sections`: the
    article's own (heading, paragraphs) instead of the paragraphs every page of the small site shares."""
    nav = "".join(
        f'<li><a href="{href}">{label}</a></li>'
        for href, label in zip(
            ("/about", "/services/repairs", "/services/fitting", "/pricing", "/blog/winter-care"),
            NAV_LABELS,
            strict=True,
        )
    )
    links = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in _link_texts(body_links))
    body = f"""<h2>How we work</h2>
<p>{_FILLER[0]}</p>
<p>{_FILLER[1]}</p>"""
    if sections is not None:
        body = "\n".join(
            f"<h2>{html.escape(name)}</h2>\n" + "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
            for name, paragraphs in sections
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title} | Northwind Cycles</title>{extra_head}
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<div class="cookie-banner" id="cookie-consent"><p>{COOKIE_TEXT}. <button>Accept all cookies</button>
<a href="/cookie-policy">Cookie policy</a></p></div>
<header><a href="/" class="logo"><img src="/images/logo.png" alt="Northwind Cycles"></a>
<nav class="main-menu"><ul>{nav}</ul></nav></header>
<main><article>
<h1>{heading}</h1>
<p>{sentence}</p>
{body}
<h2>Read on</h2>
<ul>{links}</ul>
</article></main>
<footer class="site-footer"><p>{FOOTER_TEXT}. VAT number GB 123 4567 89.</p>
<p><a href="https://social.example/@northwind">Follow us on Mastodon</a> |
<a href="/contact">Find the shop</a></p>
</footer>
</body></html>"""


def _link_texts(hrefs: list[str]) -> list[tuple[str, str]]:
    return [(href, f"More: {href.strip('/').replace('/', ' ') or 'home'}") for href in hrefs]


def _slug(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


# A prose site's own pages, and where their article links, so that every link on it leads to a page: the
# company's pages (the menu and the footer link to them) and the cookie policy (the banner links to it).
_PROSE_OWN_PAGES: dict[str, list[str]] = {
    "/": ["/about", "/services/repairs", "/services/fitting", "/pricing", "/blog/winter-care", "/contact"],
    "/about": ["/", "/services/fitting"],
    "/services/repairs": ["/services/fitting", "/pricing"],
    "/services/fitting": ["/services/repairs"],
    "/pricing": ["/contact"],
    "/blog/winter-care": ["/services/repairs"],
    "/contact": ["/"],
    "/cookie-policy": ["/"],
}
_COOKIE_PAGE = ("Cookie policy", "How we use cookies", f"{COOKIE_TEXT}; nothing else is stored.")
GUIDES_PER_SHELF = 30
PROSE_MIN_PAGES = len(_PROSE_OWN_PAGES) + 2  # the own pages, one shelf and one guide
_SHELF_TEXTS = 100_000  # shelves' paragraphs come from article numbers no guide reaches


@dataclass
class Resource:
    body: bytes
    content_type: str
    modified: float = field(default_factory=time.time)
    status: int = 200

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


@dataclass(frozen=True)
class Request:
    path: str
    host: str
    status: int
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived
    peer: int  # the client's port: one per connection


class Website:
    """The site. `start()` serves it; `url(path)` is a page's address; `requests` lists what was asked."""

    def __init__(
        self,
        crawl_delay: float = 0.02,
        generated: int = 0,
        slow: bool = False,
        big_page_kb: int = 300,
        prose: bool = False,
    ) -> None:
        """`generated`: a plain site of that many pages instead (`prose`: of distinct text, at least
        PROSE_MIN_PAGES); `slow`: link to a page that answers late."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.crawl_delay = crawl_delay
        self.robots_status = 200  # set to 503: robots.txt fails, so the whole host must be left alone
        self.slow = slow
        self.slow_seconds = 3.0  # how long /slow takes to answer
        self.conditional = True  # False: the server ignores If-None-Match and If-Modified-Since
        self.resources: dict[str, Resource] = {}
        self.redirects: dict[str, tuple[int, str]] = {}
        self.streamed: set[str] = set()  # paths answered in chunks, without a Content-Length
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadServer | None = None
        if generated and prose:
            self._build_prose(generated)
        elif generated:
            self._build_generated(generated)
        else:
            self._build(big_page_kb)

    # --- the site's content

    def _build(self, big_page_kb: int) -> None:
        body_links = {
            "/": [
                "/about",
                "/services/repairs",
                "/services/repairs?utm_source=newsletter&utm_medium=email#prices",
                "/print/pricing",
                "/old-repairs",
                "/loop-a",
                "/missing-page",
                "/broken",
                *(["/slow"] if self.slow else []),
                "/private/staff",
                "/docs/warranty.pdf",
                "/images/workshop.jpg",
                "/downloads/catalogue.zip",
                "/downloads/latest-catalogue",
                "/big",
                "/archive",
                "/thank-you",
                f"http://localhost:{self.port}/about",
                "/contact",
            ],
            "/about": ["/", "/services/fitting", "/about#team"],
            "/services/repairs": ["/services/fitting", "/pricing", "/docs/warranty.pdf"],
            "/services/fitting": ["/services/repairs"],
            "/pricing": ["/contact"],
            "/blog/winter-care": ["/services/repairs"],
            "/contact": ["/"],
        }
        for path, (title, heading, sentence) in CONTENT.items():
            self.set_page(path, page_html(title, heading, sentence, body_links[path]))
        title, heading, sentence = CONTENT["/pricing"]
        canonical = f'<link rel="canonical" href="{self.base}/pricing">'
        self.set_page("/print/pricing", page_html(title, heading, sentence, [], extra_head=canonical))
        self.set_page("/private/staff", page_html("Staff", "Staff only", PRIVATE_SENTENCE, ["/private/rota"]))
        self.set_page("/private/rota", page_html("Rota", "Rota", PRIVATE_SENTENCE, []))
        self.set("/docs/warranty.pdf", tiny_pdf(PDF_SENTENCE), "application/pdf")
        self.set("/images/workshop.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 2000, "image/jpeg")
        self.set("/images/logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 500, "image/png")
        self.set("/downloads/catalogue.zip", b"PK\x03\x04" + b"\0" * 2000, "application/zip")
        self.set("/downloads/latest-catalogue", b"PK\x03\x04" + b"\0" * 2000, "application/zip")
        filler = "<p>" + " ".join(["The archive of every repair we ever logged."] * 20) + "</p>\n"
        big = page_html("Archive", "Repair archive", "The archive.", []).replace(
            "</article>", filler * (big_page_kb * 1024 // len(filler) + 1) + "</article>"
        )
        self.set_page("/big", big)
        self.streamed.add("/archive")  # as large, sent in chunks without a Content-Length
        self.set_page("/archive", big)
        noindex = '<meta name="robots" content="noindex">'
        self.set_page("/thank-you", page_html("Thanks", "Thank you", "We got your order.", [], noindex))
        self.set("/broken", b"<h1>Internal Server Error</h1>", "text/html", status=500)
        self.redirects["/old-repairs"] = (301, "/services/repairs")
        self.redirects["/loop-a"] = (302, "/loop-b")
        self.redirects["/loop-b"] = (302, "/loop-a")
        self._sitemaps([*CONTENT, "/docs/warranty.pdf", "/private/staff"])

    def _build_generated(self, count: int) -> None:
        paths = [f"/articles/{n}" for n in range(count - 1)]
        self.set_page("/", page_html("Home", "All articles", "The index of our articles.", paths))
        for n, path in enumerate(paths):
            sentence = f"Article number {n} explains how wheel number {n} was trued by hand."
            self.set_page(path, page_html(f"Article {n}", f"Article {n}", sentence, ["/"]))
        self._sitemaps(["/", *paths])

    def _build_prose(self, count: int) -> None:
        """The company's own pages, then shelves of workshop guides (about 30 a shelf) linked from the home
        page, each guide linking back to its shelf, to the guides beside it and to two others."""
        if count < PROSE_MIN_PAGES:
            raise ValueError(f"a prose site has at least {PROSE_MIN_PAGES} pages, not {count}")
        guides = count - len(_PROSE_OWN_PAGES)
        shelves = max(1, guides // (GUIDES_PER_SHELF + 1))
        texts = [article(n) for n in range(guides - shelves)]
        guide_paths = [f"/guides/{_slug(text.title)}" for text in texts]
        shelf_paths = [f"/guides/shelf-{k + 1}" for k in range(shelves)]
        for path, links in _PROSE_OWN_PAGES.items():
            title, heading, sentence = CONTENT.get(path, _COOKIE_PAGE)
            self.set_page(
                path, page_html(title, heading, sentence, links + (shelf_paths if path == "/" else []))
            )
        for k, shelf in enumerate(shelf_paths):
            intro = article(_SHELF_TEXTS + k)
            title = f"Workshop guides, shelf {k + 1}"
            shelved = guide_paths[k::shelves]
            lead = f"Shelf {k + 1} of our workshop notes: {len(shelved)} guides by our mechanics."
            self.set_page(shelf, page_html(title, title, lead, ["/", *shelved], "", intro.sections))
        rng = random.Random(count)
        for n, (path, text) in enumerate(zip(guide_paths, texts, strict=True)):
            beside = [guide_paths[m] for m in (n - 1, n + 1) if 0 <= m < len(guide_paths)]
            links = [
                "/",
                shelf_paths[n % shelves],
                *beside,
                *rng.sample(guide_paths, min(2, len(guide_paths))),
            ]
            self.set_page(path, page_html(text.title, text.heading, text.lead, links, "", text.sections))
        self._sitemaps([*_PROSE_OWN_PAGES, *shelf_paths, *guide_paths])

    def _sitemaps(self, paths: list[str]) -> None:
        half = len(paths) // 2

        def urlset(part: list[str]) -> bytes:
            rows = "".join(f"<url><loc>{self.base}{p}</loc><lastmod>2024-05-01</lastmod></url>" for p in part)
            return (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</urlset>'
            ).encode()

        self.set("/sitemap-pages.xml", urlset(paths[:half]), "application/xml")
        self.set("/sitemap-more.xml.gz", gzip.compress(urlset(paths[half:])), "application/gzip")
        index = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{self.base}/sitemap-pages.xml</loc></sitemap>"
            f"<sitemap><loc>{self.base}/sitemap-more.xml.gz</loc></sitemap>"
            "</sitemapindex>"
        )
        self.set("/sitemap_index.xml", index.encode(), "application/xml")
        self.set("/sitemap-broken.xml", b'<?xml version="1.0"?><urlset><url><loc>', "application/xml")
        entities = (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b"<urlset><url><loc>&lol2;</loc></url></urlset>"
        )
        self.set("/sitemap-entities.xml", entities, "application/xml")

    def set(self, path: str, body: bytes, content_type: str, status: int = 200) -> None:
        with self._lock:
            self.resources[path] = Resource(body, content_type, modified=time.time(), status=status)

    def set_page(self, path: str, html: str) -> None:
        self.set(path, html.encode(), "text/html; charset=utf-8")

    def change_page(self, path: str, sentence: str) -> None:
        """Give a page a new own sentence, the paragraph under its heading (a new ETag and Last-Modified)."""
        old = self.resources[path].body.decode()
        heading_end = old.index("</h1>") + len("</h1>")
        end = old.index("</p>", heading_end) + len("</p>")
        self.set_page(path, old[:heading_end] + f"\n<p>{sentence}</p>" + old[end:])

    def remove(self, path: str) -> None:
        with self._lock:
            del self.resources[path]

    def url(self, path: str) -> str:
        return self.base + path

    # --- what was asked

    def fetched(self, path_prefix: str = "/") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- serving

    def _robots(self) -> bytes:
        return (
            "# Northwind Cycles\n"
            "User-agent: *\n"
            "Disallow: /private/\n"
            f"Crawl-delay: {self.crawl_delay}\n"
            f"\nSitemap: {self.base}/sitemap_index.xml\n"
        ).encode()

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path == "/robots.txt":
            if self.robots_status != 200:
                return self.robots_status, {"Content-Type": "text/plain"}, b"unavailable"
            return 200, {"Content-Type": "text/plain"}, self._robots()
        if path == "/slow":
            time.sleep(self.slow_seconds)
            return 200, {"Content-Type": "text/html"}, b"<html><body><p>Finally.</p></body></html>"
        bare = path.split("?", 1)[0]
        with self._lock:
            redirect = self.redirects.get(bare)
            resource = self.resources.get(bare)
        if redirect is not None:
            status, location = redirect
            return status, {"Location": location, "Content-Type": "text/html"}, b"Moved"
        if resource is None:
            return 404, {"Content-Type": "text/html"}, b"<html><body><h1>Not found</h1></body></html>"
        last_modified = formatdate(resource.modified, usegmt=True)
        out = {"Content-Type": resource.content_type, "ETag": resource.etag, "Last-Modified": last_modified}
        if self.conditional and resource.status == 200 and _not_modified(resource, headers):
            return 304, {"ETag": resource.etag, "Last-Modified": last_modified}, b""
        return resource.status, out, resource.body

    def start(self) -> Website:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            # TCP_NODELAY, as web servers set it (nginx's tcp_nodelay): otherwise a page's body, written
            # after its headers, waits for the crawler's delayed ACK, 40 ms a page on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                arrived = time.monotonic()
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, out, body = site._answer(self.path, headers)
                with site._lock:
                    site.requests.append(
                        Request(
                            self.path,
                            headers.get("host", ""),
                            status,
                            headers,
                            arrived,
                            self.client_address[1],
                        )
                    )
                self.send_response(status)
                for key, value in out.items():
                    self.send_header(key, value)
                if status == 200 and self.path in site.streamed:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(body), 8192):
                        piece = body[start : start + 8192]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadServer(Handler, self.port, name="website", server_class=_Server).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A crawler that stops reading (a page too large, a type it does not keep) closes the connection
        # mid-answer, as it should: that is no error of the site's.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _not_modified(resource: Resource, headers: dict[str, str]) -> bool:
    if "if-none-match" in headers:  # RFC 9110: If-None-Match wins over If-Modified-Since
        return resource.etag in [tag.strip() for tag in headers["if-none-match"].split(",")]
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return int(resource.modified) <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False
