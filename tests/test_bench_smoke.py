"""The local-tier benchmark runs end to end on a tiny model and prints every figure."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bench import records
from tests.conftest import KNOWLEDGE, ROOT


def test_fallback_benchmark_measures_the_tiny_model() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.fallback", "--tiny", "--tokens", "8"],
        cwd=ROOT,
        env={**os.environ, "FALLBACK_MODEL_NAME": "nobody/not-on-disk", "MINIMAL_RESOURCES": "false"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = dict(
        line.split(" = ") for line in result.stdout.splitlines() if line.startswith("fallback.tiny-gpt2.")
    )
    assert set(figures) == {
        f"fallback.tiny-gpt2.{name}"
        for name in (
            "load_s",
            "peak_rss_mb",
            "model_rss_mb",
            "response_s",
            "tokens_per_s",
            "tokens_per_answer",
        )
    }
    assert float(figures["fallback.tiny-gpt2.tokens_per_answer"]) == 8.0  # the model never stops early
    assert float(figures["fallback.tiny-gpt2.tokens_per_s"]) > 0
    assert "| tiny-gpt2 |" in result.stdout


def _small_beir_set(folder: Path) -> None:
    """A BEIR-format set from the bundled knowledge: each paragraph a document, its first words a query."""
    paragraphs = [
        p.strip()
        for source in sorted(KNOWLEDGE.glob("*.md"))
        for p in source.read_text().split("\n\n")
        if len(p.split()) >= 12 and not p.lstrip().startswith("#")
    ]
    folder.mkdir(parents=True)
    (folder / "qrels").mkdir()
    with (folder / "corpus.jsonl").open("w") as corpus, (folder / "queries.jsonl").open("w") as queries:
        for n, text in enumerate(paragraphs):
            corpus.write(json.dumps({"_id": f"d{n}", "title": "", "text": text}) + "\n")
            queries.write(json.dumps({"_id": f"q{n}", "text": " ".join(text.split()[:8])}) + "\n")
    qrels = "".join(f"q{n}\td{n}\t1\n" for n in range(len(paragraphs)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    assert len(paragraphs) >= 30  # enough questions for the warm-up and the timed ones


def test_the_service_benchmarks_run_against_real_servers(tmp_path: Path) -> None:
    _small_beir_set(tmp_path / "set")
    env = {
        **os.environ,
        "BENCH_DATASET": str(tmp_path / "set"),
        "BENCH_CACHE": str(tmp_path / "cache"),
        "BENCH_CHUNKS": "60",
        "BENCH_SECONDS": "1",
        "BENCH_LOAD_REQUESTS": "150",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bench", "cached", "retrieval", "load"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: a target missed, which is a figure, not a crash
    figures = {
        key: float(value.split()[0])
        for key, value in (line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    }
    assert figures["cached.invalid_replies"] == 0 and figures["cached.service_rps"] > 0
    assert figures["cached.bare_rps"] > 0 and figures["cached.server_cpu_ms_per_request"] > 0
    assert figures["retrieval.queries"] >= 20 and figures["retrieval.raw_p50_ms"] > 0
    assert 0 < figures["retrieval.service_p50_ms"] < figures["retrieval.chat_uncached_p50_ms"]
    assert (
        figures["load.requests"] == 150
        and figures["load.server_errors"] == 0
        and figures["load.invalid"] == 0
    )
    assert figures["load.gemini_failures"] > 0  # the fake really failed a share of the calls
    assert "| cached.rps_ratio |" in result.stdout and "target(s) missed" in result.stdout


def test_the_records_benchmark_compares_recording_off_and_on(tmp_path: Path) -> None:
    _small_beir_set(tmp_path / "set")
    env = {
        **os.environ,
        "BENCH_DATASET": str(tmp_path / "set"),
        "BENCH_CACHE": str(tmp_path / "cache"),
        "BENCH_CHUNKS": "60",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bench.records", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: a ratio missed its target on a busy machine
    figures = {
        key: float(value)
        for key, value in (line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    }
    assert figures["records.invalid_replies"] == 0
    assert figures["records.before_uncached_requests"] == figures["records.after_uncached_requests"] == 40
    assert figures["records.uncached_p50_ratio"] > 0 and figures["records.cached_rps_ratio"] > 0
    assert figures["records.before_cached_rps"] > 0 and figures["records.after_cached_cpu_ms"] > 0
    # Every answer the recording service gave is in its database, counted by the admin API and in the file.
    sent = figures["records.after_answers_sent"]
    assert sent > 40 + figures["records.after_cached_requests"] - 1
    assert figures["records.after_records"] == figures["records.after_sqlite_rows"] == sent
    assert figures["records.after_records_missing"] == figures["records.after_records_dropped"] == 0
    assert "| uncached `/chat` p50 ms |" in result.stdout and "after / before" in result.stdout
    assert "RECORDS MISSING" not in result.stdout


def test_the_records_table_compares_each_recording_side_with_recording_off() -> None:
    """The PostgreSQL side's column, ratios and verdicts (no test has a PostgreSQL server to run it)."""
    figures = {"after_sqlite_rows": 100.0}
    for key, scale in (("before", 1.0), ("after", 1.02), ("postgres", 1.5)):
        for name in ("uncached_p50", "uncached_p95", "uncached_cpu", "cached_p50", "cached_cpu"):
            figures[f"{key}_{name}_ms"] = 10.0 * scale
        figures[f"{key}_cached_rps"] = 1000.0 * scale
        sent = {"answers_sent": 100.0, "records": 100.0 if key == "after" else 99.0, "records_dropped": 0.0}
        figures.update({f"{key}_{name}": value for name, value in sent.items()})
        figures.update({f"{key}_records_backlog_max": 3.0, f"{key}_records_wait_s": 0.1})
    table, missed = records._table(figures)
    lines = table.splitlines()
    assert lines[0] == (
        "| figure | before: RECORD_ANSWERS=false | after: SQLite | after: PostgreSQL | after / before "
        "| postgres / before | target |"
    )
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert "| uncached `/chat` p50 ms | 10.0 | 10.2 | 15.0 | 1.020 | 1.500 | <= 1.05: met, MISSED |" in lines
    assert (
        "| cache hits, 16 connections: req/s | 1,000 | 1,020 | 1,500 | 1.020 | 1.500 | >= 0.95: met, met |"
        in lines
    )
    assert any(line.startswith("after: SQLite: 100 answers sent, 100 recorded") for line in lines)
    assert lines[-1].startswith("after: PostgreSQL: 100 answers sent, 99 recorded (admin API total), ")
    assert lines[-1].endswith(": RECORDS MISSING")
    assert missed == 2  # the PostgreSQL side's p50, and its missing record


def test_the_versions_benchmark_compares_a_git_ref_with_the_working_tree(tmp_path: Path) -> None:
    _small_beir_set(tmp_path / "set")
    env = {
        **os.environ,
        "BENCH_DATASET": str(tmp_path / "set"),
        "BENCH_CACHE": str(tmp_path / "cache"),
        "BENCH_CHUNKS": "60",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bench.versions", "--quick", "--base", "HEAD"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: a ratio missed its target on a busy machine
    figures = {
        key: float(value)
        for key, value in (line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    }
    assert figures["versions.invalid_replies"] == 0
    for side in ("before", "after"):
        assert figures[f"versions.{side}_uncached_requests"] == 40
        assert figures[f"versions.{side}_stream_requests"] == 40
        assert figures[f"versions.{side}_cached_rps"] > 0 and figures[f"versions.{side}_stream_p50_ms"] > 0
    assert figures["versions.uncached_p50_ratio"] > 0 and figures["versions.stream_p50_ratio"] > 0
    assert "| uncached `/chat/stream` p50 ms (whole stream) |" in result.stdout
    # The base's checkout is gone again, from git's list and from the disk.
    (base,) = re.findall(r"^before: HEAD \(\w+\) in (\S+),", result.stderr, re.MULTILINE)
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert base not in worktrees and not Path(base).exists()
