"""The crawl benchmark's quick mode runs end to end in process and its figures add up."""

from __future__ import annotations

import pytest

from bench import crawl


def test_the_crawl_benchmark_measures_a_small_site(capsys: pytest.CaptureFixture[str]) -> None:
    pages = 20
    assert crawl.main(["--quick", "--pages", str(pages)]) == 0
    out = capsys.readouterr().out
    figures = {
        name.removeprefix("crawl."): float(value)
        for name, value in (line.split(" = ") for line in out.splitlines() if line.startswith("crawl."))
    }

    assert figures["first_pages"] == figures["first_new"] == figures["first_fetched"] == pages
    # robots.txt once, then each page once: nothing the site does not have, nothing asked twice
    assert figures["first_requests"] == pages + 1
    # Nothing changed: every page answered 304, none sent again
    assert figures["unchanged_unchanged"] == figures["unchanged_pages"] == pages
    assert figures["unchanged_fetched"] == figures["unchanged_new"] == figures["unchanged_changed"] == 0
    edited = figures["edited_pages"]
    assert edited == 2  # 10% of 20
    assert figures["changed_changed"] == figures["changed_fetched"] == edited
    assert figures["changed_unchanged"] == pages - edited
    # The ingest embeds every chunk once, then only what the edits touched (each edit is one paragraph)
    assert figures["ingest_pages"] == pages and figures["ingest_embedded"] == figures["ingest_chunks"] > pages
    assert 0 < figures["changed_ingest_embedded"] <= edited * 2
    # The same unchanged site through the service's worker process: the same answers, every page a 304
    assert figures["worker_unchanged"] == figures["worker_pages"] == pages
    assert figures["worker_fetched"] == figures["worker_new"] == 0

    for name, value in figures.items():
        if name.endswith(("_s", "_per_s", "_over_embedding")):
            assert value > 0, name
    assert "| first crawl | 20 | 20 | 21 |" in out
    assert "crawl pages/s / ingest pages/s, first sync" in out
