"""`python -m bench.crawl`: how fast the owner's website is crawled, and whether crawling or embedding is
what a site sync waits for.

A local site of N pages (`fakes.website` with distinct text on every page: the company's pages, shelves of
workshop guides, links between them, a sitemap; no Crawl-delay) on 127.0.0.1 is crawled from its home page
by the service's crawler (`rag.crawl.crawler.crawl`) with the default settings (CRAWL_CONCURRENCY 4), in one
run: a first crawl, a re-crawl with nothing changed (every page answered 304), a re-crawl after a share of
the pages changed, and one more with nothing changed in a worker process, as the service crawls (its start
included). Beside them, the embedding floor: the service's own ingest (`ensure_ingested`: reading,
chunking, embedding and writing the snapshot's pages) into a temporary store, with the embedder loaded
beforehand as a running service has it, after the first crawl and after the change.

    python -m bench.crawl [--pages N] [--changed SHARE] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from bench.server import ROOT
from fakes.website import Website
from rag.crawl.crawler import CrawlReport, crawl
from rag.crawl.snapshot import site_snapshot_dir
from rag.crawl.worker import CrawlWorker
from rag.embedder import Embedder, embedder_for
from rag.ingestion import IngestReport, ensure_ingested
from rag.logs import LoggingSettings, configure_logging
from rag.settings import RagSettings
from rag.store import KnowledgeStore


@dataclass(frozen=True)
class Plan:
    pages: int = int(os.environ.get("BENCH_CRAWL_PAGES", "300"))
    changed: float = 0.1  # share of the pages changed before the third crawl


QUICK = Plan(pages=30)


@dataclass(frozen=True)
class Crawled:
    report: CrawlReport
    fetched: int  # pages the site answered 200 (robots.txt not counted): content sent again


def run(plan: Plan | None = None) -> dict[str, float]:
    plan = plan or Plan()
    _quiet_logs()
    site = Website(crawl_delay=0, generated=plan.pages, prose=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp:
            settings = _settings(Path(tmp), plan.pages)
            store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)
            embedder = _ready_embedder(settings)
            home = [site.url("/")]
            first = _crawl(site, home, settings)
            first_ingest = ensure_ingested(store, embedder, settings)
            unchanged = _crawl(site, home, settings)
            changed_paths = _change(site, plan.changed)
            changed = _crawl(site, home, settings)
            changed_ingest = ensure_ingested(store, embedder, settings)
            in_worker = _crawl_in_worker(site, home, settings)
            store.close()
    finally:
        site.stop()
    figures = {
        "site_pages": float(plan.pages),
        "concurrency": float(settings.crawl_concurrency),
        **_crawl_figures("first", first),
        **_crawl_figures("unchanged", unchanged),
        **_crawl_figures("changed", changed),
        **_crawl_figures("worker", in_worker),
        "edited_pages": float(len(changed_paths)),
        **_ingest_figures("ingest", first_ingest),
        **_ingest_figures("changed_ingest", changed_ingest),
        "embedder_onnx": float(embedder.backend_in_use == "onnx"),
    }
    # Above 1, crawling is faster than embedding: the ingest is what a site sync waits for.
    figures["first_crawl_over_embedding"] = figures["first_pages_per_s"] / figures["ingest_pages_per_s"]
    figures["changed_crawl_over_embedding"] = (
        figures["changed_pages_per_s"] / figures["changed_ingest_pages_per_s"]
    )
    return figures


def _settings(folder: Path, pages: int) -> RagSettings:
    """The defaults (and what the environment sets), in a temporary folder; only a site larger than
    CRAWL_MAX_PAGES raises it, or the crawl would stop short of it."""
    knowledge = folder / "knowledge"
    knowledge.mkdir()  # empty: only the site's pages are ingested
    settings = RagSettings(_env_file=None, knowledge_dir=knowledge, chroma_path=folder / "db")
    updates: dict[str, object] = {"crawl_max_pages": max(settings.crawl_max_pages, pages)}
    if not settings.embedding_cache_dir.is_absolute():
        # The exported graph the service would use, wherever this is started from.
        updates["embedding_cache_dir"] = ROOT / settings.embedding_cache_dir
    return settings.model_copy(update=updates)


def _ready_embedder(settings: RagSettings) -> Embedder:
    """Loaded before anything is timed, as a running service keeps it."""
    embedder = embedder_for(settings)
    embedder.load()
    if not embedder.wait_for_export():
        raise RuntimeError("the embedding model's ONNX export did not finish")
    if embedder.backend_in_use != "onnx":
        # Without a cached graph `auto` runs torch (the export is for the next start): slower than a
        # service that has started once.
        sys.stderr.write("crawl: the embedder runs on torch, not ONNX Runtime: the embedding floor is low\n")
    return embedder


def _crawl(site: Website, urls: list[str], settings: RagSettings) -> Crawled:
    site.clear_requests()
    report = asyncio.run(crawl(urls, site_snapshot_dir(settings), settings))
    fetched = sum(1 for r in site.fetched() if r.status == 200 and r.path != "/robots.txt")
    sys.stderr.write(
        f"  crawl: {report.pages} pages ({report.new} new, {report.changed} changed, {report.unchanged} "
        f"unchanged), {report.requests} requests, {fetched} answered 200, {report.seconds:.2f} s\n"
    )
    return Crawled(report, fetched)


def _crawl_in_worker(site: Website, urls: list[str], settings: RagSettings) -> Crawled:
    """The unchanged site re-crawled as the service crawls: in a worker process, timed from its start to its
    report (the process's start and imports included)."""
    site.clear_requests()
    worker = CrawlWorker(settings, LoggingSettings(_env_file=None, log_level="WARNING"))
    started = time.perf_counter()
    report = worker.run(urls, site_snapshot_dir(settings))
    report.seconds = time.perf_counter() - started
    fetched = sum(1 for r in site.fetched() if r.status == 200 and r.path != "/robots.txt")
    sys.stderr.write(f"  crawl in a worker process: {report.pages} pages, {report.seconds:.2f} s\n")
    return Crawled(report, fetched)


def _change(site: Website, share: float) -> list[str]:
    """A new first paragraph for `share` of the site's pages, spread over the whole site."""
    pages = sorted(
        path for path, resource in site.resources.items() if resource.content_type.startswith("text/html")
    )
    count = max(1, round(len(pages) * share))
    chosen = pages[:: max(1, len(pages) // count)][:count]
    for n, path in enumerate(chosen):
        site.change_page(path, f"Updated this week: note {n + 1} now covers the new spring opening hours.")
    return chosen


def _crawl_figures(name: str, crawled: Crawled) -> dict[str, float]:
    report = crawled.report
    return {
        f"{name}_pages": float(report.pages),
        f"{name}_new": float(report.new),
        f"{name}_changed": float(report.changed),
        f"{name}_unchanged": float(report.unchanged),
        f"{name}_fetched": float(crawled.fetched),
        f"{name}_requests": float(report.requests),
        f"{name}_s": report.seconds,
        f"{name}_pages_per_s": report.pages / report.seconds,
        f"{name}_requests_per_s": report.requests / report.seconds,
    }


def _ingest_figures(name: str, report: IngestReport) -> dict[str, float]:
    return {
        f"{name}_pages": float(report.files),  # the snapshot's pages: the knowledge folder is empty
        f"{name}_chunks": float(report.chunks),
        f"{name}_embedded": float(report.embedded),
        f"{name}_s": report.seconds,
        f"{name}_pages_per_s": report.files / report.seconds,
        f"{name}_embedded_per_s": report.embedded / report.seconds,
    }


def _quiet_logs() -> None:
    """Warnings only, on stderr, unless the process set its logging up already (a test session)."""
    if not structlog.is_configured():
        configure_logging(LoggingSettings(_env_file=None, log_level="WARNING"))


def table(figures: dict[str, float], plan: Plan) -> str:
    def crawl_row(title: str, name: str) -> str:
        return (
            f"| {title} | {figures[f'{name}_pages']:,.0f} | {figures[f'{name}_fetched']:,.0f} | "
            f"{figures[f'{name}_requests']:,.0f} | {figures[f'{name}_s']:.2f} | "
            f"**{figures[f'{name}_pages_per_s']:,.0f}** | {figures[f'{name}_requests_per_s']:,.0f} |\n"
        )

    def ingest_row(title: str, name: str) -> str:
        return (
            f"| {title} | {figures[f'{name}_pages']:,.0f} | {figures[f'{name}_embedded']:,.0f} of "
            f"{figures[f'{name}_chunks']:,.0f} chunks embedded | | {figures[f'{name}_s']:.2f} | "
            f"**{figures[f'{name}_pages_per_s']:,.1f}** | |\n"
        )

    def ratio_row(title: str, name: str) -> str:
        return f"| **crawl pages/s / ingest pages/s, {title}** | | | | | **{figures[name]:.1f}x** | |\n"

    changed = f"{figures['edited_pages']:,.0f}"
    backend = "ONNX Runtime" if figures["embedder_onnx"] else "torch"
    return (
        "| step | pages | fetched (200) | requests | seconds | pages/s | requests/s |\n"
        "|---|---|---|---|---|---|---|\n"
        + crawl_row("first crawl", "first")
        + crawl_row("re-crawl, nothing changed (304s)", "unchanged")
        + crawl_row(f"re-crawl, {changed} pages changed ({plan.changed:.0%})", "changed")
        + crawl_row("re-crawl, nothing changed, in a worker process as the service runs it", "worker")
        + ingest_row(f"embedding floor: ingest of the first crawl ({backend})", "ingest")
        + ingest_row(f"ingest after {changed} pages changed", "changed_ingest")
        + ratio_row("first sync", "first_crawl_over_embedding")
        + ratio_row("after the change", "changed_crawl_over_embedding")
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crawl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, help=f"pages of the local site (default {Plan().pages})")
    parser.add_argument("--changed", type=float, help="share of the pages changed before the third crawl")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK.pages} pages")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    plan = Plan(pages=args.pages or plan.pages, changed=args.changed or plan.changed)
    figures = run(plan)
    for name, value in figures.items():
        sys.stdout.write(f"crawl.{name} = {value:.3f}\n")
    sys.stdout.write(f"\n{table(figures, plan)}")
    sys.stdout.write(
        f"\n{datetime.date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; a site of {plan.pages} pages, CRAWL_CONCURRENCY "
        f"{figures['concurrency']:.0f}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
