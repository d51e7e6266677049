"""Pages of the owner's website, crawled into the snapshot beside the store, are knowledge like the files of
the knowledge folder: embedded by the same build-and-switch ingestion, answered from, and cited by their
address and title."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from fakes.website import CONTENT, PDF_SENTENCE, Website, tiny_pdf
from rag.crawl.crawler import crawl
from rag.crawl.snapshot import site_snapshot_dir
from rag.embedder import Embedder
from rag.formats import pdf_title
from rag.ingestion import ensure_ingested
from rag.store import open_store
from tests.conftest import AppFactory, rag_settings


@pytest.fixture
def site() -> Iterator[Website]:
    website = Website(crawl_delay=0).start()
    yield website
    website.stop()


def test_crawled_pages_are_answered_from_and_cited_by_their_address(
    make_client: AppFactory, store_dir: Path, site: Website
) -> None:
    settings = rag_settings(chroma_path=store_dir, crawl_max_page_mb=0.1)  # the site's archive is larger
    report = asyncio.run(crawl([site.url("/")], site_snapshot_dir(settings), settings))
    assert report.pages == 8

    client = make_client()  # its start ingests what changed: the site's pages, beside the knowledge folder
    reply = client.post("/chat", json={"message": "How much does a full service cost at Northwind Cycles?"})
    body = reply.json()
    assert "89 pounds" in body["response"], body
    cited = {source["source"]: source["title"] for source in body["sources"]}
    assert site.url("/services/repairs") in cited
    assert cited[site.url("/services/repairs")].startswith(CONTENT["/services/repairs"][0])
    knowledge = client.get("/admin/knowledge").json()
    names = {file["path"] for file in knowledge["files"]}
    assert site.url("/pricing") in names and "services.md" in names  # files and pages side by side
    assert knowledge["up_to_date"] is True


def test_a_changed_page_is_embedded_again_alone_and_a_removed_one_leaves(
    store_dir: Path, site: Website, embedder: Embedder
) -> None:
    settings = rag_settings(chroma_path=store_dir, crawl_max_page_mb=0.1)  # the site's archive is larger
    folder = site_snapshot_dir(settings)
    asyncio.run(crawl([site.url("/")], folder, settings))
    store = open_store(settings)
    try:
        first = ensure_ingested(store, embedder, settings)
        assert sorted(first.added) == sorted(site.url(p) for p in (*CONTENT, "/docs/warranty.pdf"))

        again = ensure_ingested(store, embedder, settings)
        assert again.status == "up_to_date" and again.embedded == 0

        site.change_page("/pricing", "Gift vouchers now come in multiples of ten pounds and never expire.")
        site.remove("/blog/winter-care")
        asyncio.run(crawl([site.url("/")], folder, settings))
        changed = ensure_ingested(store, embedder, settings)
        assert changed.changed == [site.url("/pricing")] and changed.added == []
        assert changed.removed == [site.url("/blog/winter-care")]
        assert 0 < changed.embedded <= 2  # the changed page's chunks only
    finally:
        store.close()


def test_a_crawled_pdf_is_cited_by_its_own_title(
    make_client: AppFactory, store_dir: Path, site: Website
) -> None:
    document = PdfWriter(clone_from=PdfReader(io.BytesIO(tiny_pdf(PDF_SENTENCE))))
    # As a word processor leaves it: the tool's name and the file's suffix around the author's title.
    document.add_metadata({"/Title": "Microsoft Word - Frame warranty terms.docx"})
    body = io.BytesIO()
    document.write(body)
    site.set("/docs/terms-2026.pdf", body.getvalue(), "application/pdf")
    settings = rag_settings(chroma_path=store_dir)
    report = asyncio.run(crawl([site.url("/docs/terms-2026.pdf")], site_snapshot_dir(settings), settings))
    assert report.new == 1

    client = make_client()
    reply = client.post("/chat", json={"message": "What warranty do Northwind frames carry?"}).json()
    cited = {source["source"]: source["title"] for source in reply["sources"]}
    assert cited.get(site.url("/docs/terms-2026.pdf")) == "Frame warranty terms", reply


def test_pdf_titles_are_read_as_a_person_would() -> None:
    assert pdf_title("Microsoft PowerPoint - Price list 2026.pptx") == "Price list 2026"
    assert pdf_title("  Opening   hours ") == "Opening hours"
    assert pdf_title("Untitled") == "" and pdf_title("report.pdf") == "report" and pdf_title("") == ""
