"""The crawler against a real website served on 127.0.0.1 (fakes/website.py): what it keeps, what it
leaves out and why, how it re-crawls, and what a failing site does to the snapshot."""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError
from pypdf import PdfReader

from fakes.website import (
    BOILERPLATE,
    CONTENT,
    PDF_SENTENCE,
    PRIVATE_SENTENCE,
    Website,
    tiny_pdf,
)
from rag.crawl.crawler import CrawlReport, crawl
from rag.crawl.sitemaps import BadSitemap, parse_sitemap
from rag.crawl.snapshot import CRAWL_FILE, PAGES_FILE, Snapshot, site_snapshot_dir
from rag.crawl.urls import normalize, site_of
from rag.settings import RagSettings

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*CONTENT, "/docs/warranty.pdf"]  # what the site has to offer: seven pages and a PDF
# What a crawl from the home page meets besides them, by reason (each URL once).
SKIPPED_FROM_HOME = {
    "robots": 1,  # /private/staff (its own link, /private/rota, is never seen)
    "other_site": 2,  # http://localhost:<port>/about and the footer's social.example
    "not_html": 3,  # a .jpg and a .zip (by name, not asked for) and a zip without a suffix (by type)
    "too_large": 2,  # over CRAWL_MAX_PAGE_MB: /big (its Content-Length says so), /archive (chunked: cut off)
    "noindex": 1,  # /thank-you: <meta name=robots content=noindex>
    "http_404": 2,  # /missing-page and the cookie banner's /cookie-policy
    "http_5xx": 1,  # /broken
    "redirect_loop": 1,  # /loop-a -> /loop-b -> /loop-a
    "duplicate": 2,  # /old-repairs (301 to /services/repairs) and /print/pricing (canonical: /pricing)
}


def settings(**overrides: Any) -> RagSettings:
    values: dict[str, Any] = {
        "_env_file": None,
        "crawl_timeout": 5,
        "crawl_max_page_mb": 0.1,  # 100 KiB: the site's pages are ~3 KiB, /big is 300 KiB
        "crawl_concurrency": 4,
    }
    return RagSettings(**{**values, **overrides})


def run(urls: list[str], folder: Path, config: RagSettings | None = None) -> CrawlReport:
    return asyncio.run(crawl(urls, folder, config or settings()))


def pages_json(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / PAGES_FILE).read_text())
    return data


def text_of(folder: Path, record: dict[str, Any]) -> str:
    path = folder / record["file"]
    if path.suffix == ".pdf":
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(path.read_bytes())).pages)
    text: str = path.read_text()
    return text


def mtimes(folder: Path) -> dict[str, int]:
    """When each page file and pages.json were written (crawl.json notes every crawl, changed or not)."""
    return {
        entry.name: entry.stat().st_mtime_ns
        for entry in folder.iterdir()
        if not entry.name.startswith(".") and entry.name != CRAWL_FILE
    }


@pytest.fixture
def site() -> Iterator[Website]:
    website = Website().start()
    yield website
    website.stop()


def test_a_first_crawl_from_the_home_page_keeps_each_page_s_own_text_only(tmp_path: Path) -> None:
    site = Website(crawl_delay=0.05, slow=True).start()
    try:
        report = run([site.url("/")], tmp_path, settings(crawl_timeout=1))
    finally:
        site.stop()

    assert set(pages_json(tmp_path)) == {site.url(path) for path in PAGES}
    assert (report.pages, report.new, report.changed, report.unchanged, report.removed) == (8, 8, 0, 0, 0)
    assert report.skipped == {**SKIPPED_FROM_HOME, "timeout": 1}, report.errors
    assert report.complete
    assert (site.url("/broken"), "http_5xx") in report.errors and (
        site.url("/slow"),
        "timeout",
    ) in report.errors
    assert not any(reason in {"robots", "duplicate", "other_site"} for _, reason in report.errors)

    # robots.txt first, nothing under /private/ ever, nothing from the other host, nothing that is not a page
    asked = sorted(site.requests, key=lambda request: request.at)
    assert asked[0].path == "/robots.txt"
    paths = [request.path for request in asked]
    assert not [path for path in paths if path.startswith("/private/")]
    assert {request.host for request in asked} == {f"127.0.0.1:{site.port}"}
    assert "/images/workshop.jpg" not in paths and "/downloads/catalogue.zip" not in paths
    assert all(request.headers["user-agent"] == "kb-chatbot-crawler/1" for request in asked)
    # Crawl-delay: 0.05 spaces the requests (arrival times vary a little with the threads serving them)
    gaps = [b.at - a.at for a, b in itertools.pairwise(asked)]
    assert min(gaps) > 0.035, gaps

    records = pages_json(tmp_path)
    for path, (_, heading, sentence) in CONTENT.items():
        record = records[site.url(path)]
        text = text_of(tmp_path, record)
        assert sentence in text and f"# {heading}" in text, (path, text)
        for boilerplate in BOILERPLATE:
            assert boilerplate not in text, (path, boilerplate)
        assert record["file"].endswith(".md") and record["etag"] and record["last_modified"]
        assert record["title"].startswith(CONTENT[path][0])
    pdf = records[site.url("/docs/warranty.pdf")]
    assert pdf["file"].endswith(".pdf") and pdf["title"] == "warranty"
    assert PDF_SENTENCE in text_of(tmp_path, pdf)
    saved = "".join(text_of(tmp_path, record) for record in records.values())
    assert PRIVATE_SENTENCE not in saved
    # one file per page, nothing else but the records (and the crawl's lock)
    assert {entry.name for entry in tmp_path.iterdir()} == {
        *(record["file"] for record in records.values()),
        PAGES_FILE,
        CRAWL_FILE,
        ".crawl.lock",
    }


def test_a_crawl_from_the_sitemap_index_reads_both_sitemaps_and_follows_no_links(
    site: Website, tmp_path: Path
) -> None:
    report = run([site.url("/sitemap_index.xml")], tmp_path)

    assert set(pages_json(tmp_path)) == {site.url(path) for path in PAGES}
    assert report.new == 8 and report.complete
    assert report.skipped == {"robots": 1}  # /private/staff is in the sitemap, and disallowed
    paths = {request.path for request in site.requests}
    assert {"/sitemap-pages.xml", "/sitemap-more.xml.gz"} <= paths
    assert not {path for path in paths if path.startswith("/private/")}
    assert "/missing-page" not in paths  # linked from the home page, which a sitemap crawl does not follow


def test_malformed_sitemaps_are_skipped_and_counted(site: Website, tmp_path: Path) -> None:
    report = run([site.url("/sitemap-broken.xml"), site.url("/sitemap-entities.xml")], tmp_path)

    assert report.skipped == {"bad_sitemap": 2}
    assert report.pages == 0 and not report.complete
    with pytest.raises(BadSitemap, match="DTD"):
        parse_sitemap(site.resources["/sitemap-entities.xml"].body)
    with pytest.raises(BadSitemap, match="uncompressed"):
        parse_sitemap(gzip.compress(b"<urlset>" + b" " * 2000 + b"</urlset>"), max_bytes=1000)


def test_a_recrawl_of_an_unchanged_site_asks_conditionally_and_rewrites_nothing(
    site: Website, tmp_path: Path
) -> None:
    run([site.url("/")], tmp_path)
    before = mtimes(tmp_path)
    site.clear_requests()

    report = run([site.url("/")], tmp_path)

    assert (report.pages, report.unchanged, report.new, report.changed, report.removed) == (8, 8, 0, 0, 0)
    assert report.skipped == SKIPPED_FROM_HOME
    assert mtimes(tmp_path) == before  # not a page file, nor pages.json, was written
    answered = {request.path: request for request in site.requests}
    for path in PAGES:
        assert answered[path].status == 304, path
        assert "if-none-match" in answered[path].headers and "if-modified-since" in answered[path].headers
    assert sum(request.status == 304 for request in site.requests) == 8


def test_a_server_without_validators_gets_the_same_content_and_nothing_is_rewritten(
    site: Website, tmp_path: Path
) -> None:
    run([site.url("/")], tmp_path)
    before = mtimes(tmp_path)
    site.conditional = False

    report = run([site.url("/")], tmp_path)

    assert (report.unchanged, report.changed, report.new) == (8, 0, 0)
    assert mtimes(tmp_path) == before


def test_a_changed_page_is_the_only_one_changed(site: Website, tmp_path: Path) -> None:
    run([site.url("/")], tmp_path)
    before = mtimes(tmp_path)
    about = pages_json(tmp_path)[site.url("/about")]["file"]
    site.change_page("/about", "Since May the workshop also repairs electric cargo bikes.")

    report = run([site.url("/")], tmp_path)

    assert (report.changed, report.unchanged, report.new, report.removed) == (1, 7, 0, 0)
    text = (tmp_path / about).read_text()
    assert "electric cargo bikes" in text and CONTENT["/about"][2] not in text
    after = mtimes(tmp_path)
    assert {name for name in after if after[name] != before[name]} == {about, PAGES_FILE}


def test_a_page_gone_from_the_site_leaves_the_snapshot(site: Website, tmp_path: Path) -> None:
    run([site.url("/")], tmp_path)
    gone = pages_json(tmp_path)[site.url("/blog/winter-care")]["file"]
    site.remove("/blog/winter-care")

    report = run([site.url("/")], tmp_path)

    assert report.removed == 1 and report.unchanged == 7 and report.complete
    assert report.skipped["http_404"] == 3
    assert site.url("/blog/winter-care") not in pages_json(tmp_path)
    assert not (tmp_path / gone).exists()


def test_a_page_failing_for_a_passing_reason_keeps_its_previous_version(
    site: Website, tmp_path: Path
) -> None:
    run([site.url("/")], tmp_path)
    before = pages_json(tmp_path)[site.url("/about")]
    site.set("/about", b"<h1>Service unavailable</h1>", "text/html", status=503)

    report = run([site.url("/")], tmp_path)

    assert (report.kept, report.unchanged, report.removed) == (1, 7, 0)
    assert report.skipped["http_5xx"] == 2
    assert pages_json(tmp_path)[site.url("/about")] == before


def test_an_unreachable_start_url_leaves_the_snapshot_as_it_was(site: Website, tmp_path: Path) -> None:
    run([site.url("/")], tmp_path)
    first = Snapshot(tmp_path).last_crawl()
    before = {e.name: e.read_bytes() for e in tmp_path.iterdir() if e.name != CRAWL_FILE}
    before_times = mtimes(tmp_path)
    site.stop()

    report = run([site.url("/")], tmp_path, settings(crawl_timeout=2))

    assert not report.complete and report.pages == 0 and report.kept == 8 and report.removed == 0
    assert report.skipped == {"robots_unavailable": 1}  # robots.txt went unanswered: nothing is asked
    assert {e.name: e.read_bytes() for e in tmp_path.iterdir() if e.name != CRAWL_FILE} == before
    assert mtimes(tmp_path) == before_times
    # The attempt is noted all the same: a schedule does not try again at once.
    record = json.loads((tmp_path / CRAWL_FILE).read_text())
    assert first is not None and record["finished_at"] > first and record["complete"] is False


def test_robots_txt_failing_with_a_server_error_stops_all_requests_to_the_host(
    site: Website, tmp_path: Path
) -> None:
    site.robots_status = 503

    report = run([site.url("/"), site.url("/sitemap_index.xml")], tmp_path)

    assert [request.path for request in site.requests] == ["/robots.txt"]
    assert report.skipped == {"robots_unavailable": 2} and report.pages == 0 and not report.complete
    assert (site.url("/robots.txt"), "robots_unavailable") in report.errors


def test_bounds_on_pages_and_depth(site: Website, tmp_path: Path) -> None:
    shallow = run([site.url("/")], tmp_path / "shallow", settings(crawl_max_depth=0))
    assert shallow.pages == 1 and shallow.skipped["max_depth"] > 5

    few = run([site.url("/")], tmp_path / "few", settings(crawl_max_pages=3))
    assert few.pages <= 3 and few.skipped["max_pages"] > 5
    site.clear_requests()
    run([site.url("/")], tmp_path / "few-again", settings(crawl_max_pages=3))
    asked = [request.path for request in site.requests if request.path != "/robots.txt"]
    assert len(asked) <= 3, asked


def test_a_long_crawl_delay_is_capped(tmp_path: Path) -> None:
    site = Website(crawl_delay=30, generated=4).start()
    try:
        with structlog.testing.capture_logs() as logs:
            started = time.perf_counter()
            report = run([site.url("/")], tmp_path, settings(crawl_delay_max=0.1))
            seconds = time.perf_counter() - started
    finally:
        site.stop()
    assert report.pages == 4 and seconds < 3
    capped = [line for line in logs if line["event"] == "crawl_delay_capped"]
    assert capped and capped[0]["asked"] == 30 and capped[0]["used"] == 0.1


def test_a_recrawl_of_200_unchanged_pages_takes_under_two_seconds(tmp_path: Path) -> None:
    site = Website(crawl_delay=0, generated=200).start()
    try:
        first = run([site.url("/")], tmp_path, settings(crawl_max_page_mb=5))
        assert first.new == 200, first.skipped
        site.clear_requests()
        started = time.perf_counter()
        again = run([site.url("/")], tmp_path, settings(crawl_max_page_mb=5))
        seconds = time.perf_counter() - started
    finally:
        site.stop()
    assert again.unchanged == 200 and again.new == again.changed == again.removed == 0
    assert seconds < 2.0, f"re-crawl of 200 unchanged pages took {seconds:.2f}s"
    # 304s, redirects and error pages are read to their end, so the connections are kept and reused
    assert len({request.peer for request in site.requests}) <= 4


def test_the_cli_crawls_into_chroma_path_site(site: Website, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CHROMA_PATH": str(tmp_path / "db"),
        "KNOWLEDGE_URLS": site.url("/sitemap_index.xml"),
        "LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rag", "crawl"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("8 pages in "), done.stdout
    folder = site_snapshot_dir(settings(chroma_path=tmp_path / "db"))
    assert folder == tmp_path / "db" / "site" and len(pages_json(folder)) == 8
    assert '"event":"crawl_url_skipped"' in done.stderr and '"reason":"robots"' in done.stderr

    site.stop()
    failed = subprocess.run(
        [sys.executable, "-m", "rag", "crawl", site.url("/"), "--snapshot", str(folder)],
        cwd=ROOT,
        env={**env, "CRAWL_TIMEOUT": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "incomplete" in failed.stdout and len(pages_json(folder)) == 8

    refused = subprocess.run(
        [sys.executable, "-m", "rag", "crawl", "ftp://example.com/"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "not an http:// or https:// URL" in refused.stderr


def test_settings_refuse_urls_that_are_not_http() -> None:
    with pytest.raises(ValidationError, match=r"KNOWLEDGE_URLS: 'ftp://example\.com/' is not an http"):
        settings(knowledge_urls="https://example.com/, ftp://example.com/")
    ok = settings(knowledge_urls=" https://example.com/sitemap.xml ,http://example.com/start ,")
    assert ok.knowledge_url_list == ["https://example.com/sitemap.xml", "http://example.com/start"]
    with pytest.raises(ValidationError):
        settings(crawl_user_agent="bot/1\r\nX-Injected: 1")
    with pytest.raises(ValidationError):
        settings(crawl_concurrency=0)


def test_urls_are_normalized_to_one_spelling() -> None:
    assert normalize("HTTP://Example.COM:80") == "http://example.com/"
    assert (
        normalize("https://example.com:443/a?utm_source=x&id=3&fbclid=y#top") == "https://example.com/a?id=3"
    )
    assert normalize("../b?gclid=1", "https://example.com/x/y/z") == "https://example.com/x/b"
    assert normalize("https://user:pw@example.com:8443/") == "https://example.com:8443/"
    assert normalize("mailto:shop@example.com", "https://example.com/") is None
    assert normalize("javascript:void(0)", "https://example.com/") is None
    assert normalize("http://example.com:99999/") is None
    assert site_of("https://www.example.com/") == site_of("http://example.com/a") == "example.com"
    assert site_of("http://127.0.0.1:8080/") != site_of("http://localhost:8080/")


def test_the_test_site_s_pdf_has_a_text_layer() -> None:
    reader = PdfReader(io.BytesIO(tiny_pdf("A text layer.")))
    assert reader.pages[0].extract_text().strip() == "A text layer."
