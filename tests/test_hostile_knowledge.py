"""Hostile knowledge files: each costs one skipped file (with its reason), never the ingest, the service's
memory or its time. Every file is generated here (tests/hostile_files.py)."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import pytest

from rag.chunking import chunk_document
from rag.embedder import Embedder, resolve_model_path
from rag.ingestion import ensure_ingested
from rag.isolated import ParserFailed, Parsers
from rag.loading import Document, ReadLimits, load, scan
from rag.settings import DEFAULT_EMBEDDING_MODEL
from rag.store import KnowledgeStore
from rag.tokens import tokens_for
from tests.conftest import KNOWLEDGE, rag_settings
from tests.hostile_files import heading_bomb, pdf_bomb, pdf_mutants, write_hostile_files


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def reset_peak_rss() -> None:
    """The kernel's "reset the peak RSS" command; where it is refused, the peak only reads higher before,
    so the growth measured is smaller, never a false failure."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def test_an_ingest_with_every_hostile_file_serves_the_rest(tmp_path: Path, embedder: Embedder) -> None:
    knowledge = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    skipped, unlisted = write_hostile_files(knowledge / "hostile")
    (knowledge / "hostile" / "latin1.txt").write_bytes("Café opening hours: 9 to 5.".encode("cp1252"))
    settings = rag_settings(knowledge_dir=knowledge, chroma_path=tmp_path / "db")
    store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)

    reset_peak_rss()
    before = peak_rss_mb()
    started = time.perf_counter()
    report = ensure_ingested(store, embedder, settings)
    seconds = time.perf_counter() - started
    growth = peak_rss_mb() - before

    served = store.active_build
    assert served is not None
    files = served.manifest.files
    assert {f"hostile/{name}" for name in skipped} <= set(report.skipped)
    for name in skipped:
        assert files[f"hostile/{name}"].skipped, name  # the reason is kept for /admin/knowledge
    assert not {f"hostile/{name}" for name in unlisted} & set(files)  # links out and special files
    assert not any(path.startswith("hostile/etc/") for path in files)
    # Text that is text is still read: a cp1252 file, and the heading that once took minutes to match.
    assert files["hostile/latin1.txt"].chunks == 1 and not files["hostile/latin1.txt"].skipped
    assert files["hostile/heading-bomb.md"].chunks >= 1
    assert files["pricing.md"].chunks >= 1 and not files["pricing.md"].skipped
    # The 113 MB zip bomb, a 26 MB text file, noise: the ingest stays small and quick.
    assert growth < 150, f"peak RSS grew {growth:.0f} MB"
    assert seconds < 120


@pytest.mark.parametrize("spaces", [4_000, 50_000])
def test_a_hostile_heading_loads_and_chunks_in_linear_time(tmp_path: Path, spaces: int) -> None:
    (tmp_path / "bomb.md").write_text(heading_bomb(spaces))
    started = time.perf_counter()
    document = load(scan(tmp_path)[0])
    assert time.perf_counter() - started < 1.0  # was 54 s at 4,000 spaces
    assert document.title.startswith("a") and document.title.endswith("x")


def test_a_zip_bomb_pdf_is_refused_by_the_parser_not_the_service(tmp_path: Path) -> None:
    (tmp_path / "bomb.pdf").write_bytes(pdf_bomb())
    reset_peak_rss()
    before = peak_rss_mb()
    with pytest.raises(Exception, match=r"unreadable PDF|memory|characters"):
        load(scan(tmp_path)[0])
    assert peak_rss_mb() - before < 50  # inflating happened in the worker, under its own limit


def test_mutated_pdfs_never_raise_anything_but_unreadable_file(tmp_path: Path) -> None:
    for number, mutant in enumerate(pdf_mutants(60, seed=3)):
        (tmp_path / f"m{number:02d}.pdf").write_bytes(mutant)
    outcomes = {"read": 0, "skipped": 0}
    with ReadLimits().parsers() as parsers:
        for source in scan(tmp_path):
            try:
                load(source, ReadLimits(), parsers)
                outcomes["read"] += 1
            except Exception as exc:
                assert type(exc).__name__ == "UnreadableFile", repr(exc)
                outcomes["skipped"] += 1
    assert outcomes["read"] and outcomes["skipped"]  # both kinds were exercised


def test_the_parser_worker_is_bounded_in_memory_and_time() -> None:
    with Parsers(memory_bytes=200 * 2**20, seconds=30) as parsers:
        with pytest.raises(ParserFailed, match="more than 200 MB of memory"):
            parsers.html("<p " + "a=b " * 2_000_000 + ">x</p>", 10**9)
        # The worker that ran out of memory was replaced: the next file parses.
        assert parsers.html("<head><title>T</title></head><p>fine</p>", 1000) == ("T", "fine")
    with Parsers(memory_bytes=1024 * 2**20, seconds=0.5) as parsers:
        started = time.perf_counter()
        with pytest.raises(ParserFailed, match=r"took longer than 0\.5 s"):
            parsers.html("<div>" * 1_000_000, 10**9)  # ~20 s of parsing
        assert time.perf_counter() - started < 3
        assert parsers.html("<p>after</p>", 1000) == ("", "after")


def test_a_page_with_too_much_text_stops_early() -> None:
    with Parsers(memory_bytes=1024 * 2**20, seconds=60) as parsers:
        started = time.perf_counter()
        with pytest.raises(ParserFailed, match="KNOWLEDGE_MAX_TEXT_CHARS"):
            parsers.html("<p>word word word</p>\n" * 900_000, 100_000)
        assert time.perf_counter() - started < 5  # not the ~40 s a whole 18 MB page takes


def test_size_and_text_limits_are_settings(tmp_path: Path) -> None:
    (tmp_path / "big.md").write_text("# Big\n\n" + "word " * 300_000)  # 1.5 MB
    source = scan(tmp_path)[0]
    settings = rag_settings(knowledge_dir=tmp_path, knowledge_max_file_mb=1)
    with pytest.raises(Exception, match="over the 1 MB limit"):
        load(source, ReadLimits.of(settings))
    settings = rag_settings(knowledge_dir=tmp_path, knowledge_max_text_chars=100_000)
    with pytest.raises(Exception, match="more than 100,000 characters"):
        load(source, ReadLimits.of(settings))
    assert load(source).title == "Big"  # the defaults allow it


def test_a_link_swapped_in_after_the_scan_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "faq.md").write_text("# FAQ\n\nWe open at nine.")
    (source,) = scan(tmp_path)
    (tmp_path / "faq.md").unlink()
    (tmp_path / "faq.md").symlink_to("/etc/passwd")
    with pytest.raises(Exception, match="outside the folder"):
        load(source)


def test_links_inside_the_folder_are_still_read(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "faq.md").write_text("# FAQ\n\nWe open at nine.")
    (tmp_path / "faq.md").symlink_to(tmp_path / "shared" / "faq.md")
    documents = {source.relative: load(source) for source in scan(tmp_path)}
    assert documents["faq.md"].text == documents["shared/faq.md"].text


@pytest.mark.parametrize("body", ["#" * 400_000, "a" * 400_000, "word-" * 80_000])
def test_one_endless_sentence_is_chunked_in_linear_time_and_bounded_pieces(body: str) -> None:
    tokens = tokens_for(resolve_model_path(DEFAULT_EMBEDDING_MODEL))
    document = Document("endless.md", "Endless", "# Endless\n\nIntro.\n\n" + body, is_markdown=True)
    started = time.process_time()
    chunks = chunk_document(document, 200, 32, tokens)
    assert time.process_time() - started < 10  # cut after cut re-tokenized the rest: hours at 2 MB
    assert sum(len(chunk.text) for chunk in chunks) >= len(body)  # nothing dropped
    # One unsplittable "word" is one token to the model: chunks are bounded in characters too.
    assert max(len(chunk.text) for chunk in chunks) <= 200 * 12
    assert max(tokens.count([chunk.text for chunk in chunks])) <= 200
