"""`python -m bench.records`: does recording every answer slow visitors down?

The service with RECORD_ANSWERS=false ("before") and with RECORD_ANSWERS=true ("after": the default embedded
SQLite file, in a temporary DATA_DIR), both running as real processes on 127.0.0.1 for the whole run, each on
its own copy of the benchmark store (an embedded Chroma store is one process's), and measured in interleaved
rounds, each variant going first in turn: uncached `/chat` one visitor at a time (questions
neither service has seen, so every one is a cache miss, through the same fast path a visitor's question takes)
and cache hits at 16 connections. With `--postgres-url URL` (or BENCH_POSTGRES_URL) a third service records to
that PostgreSQL database and is measured in the same rounds.

Every `/chat` sent to a recording service is counted, and at the end, once the writer's queue is empty (its
`queued` and `dropped` in `/health`, also read at the end of every timed load), the records are counted back
through the admin API (`GET /admin/conversations?days=1`: each lone question is its own conversation) and, for
SQLite, in the file itself once the service has stopped: records must equal answers sent.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import side_by_side
from bench.client import LoadResult
from bench.corpus import corpus
from bench.side_by_side import CACHED, UNCACHED, Kind, Plan, Variant

MAX_P50_RATIO = 1.05  # uncached p50, after / before
MIN_RPS_RATIO = 0.95  # cached throughput, after / before
KINDS = (UNCACHED, CACHED)
TARGETS = {"uncached_p50_ms": ("<=", MAX_P50_RATIO), "cached_rps": (">=", MIN_RPS_RATIO)}
# The figures compared "after / before", in the order they are printed.
RATIOS = ("uncached_p50_ms", "uncached_cpu_ms", "cached_rps", "cached_cpu_ms")
BEFORE = ("before", "before: RECORD_ANSWERS=false")
RECORDING = (("after", "after: SQLite"), ("postgres", "after: PostgreSQL"))  # key, the table's label
SQLITE_FILE = "records.sqlite3"  # agent.records.settings.SQLITE_FILE, under DATA_DIR
ADMIN_TOKEN = "bench-records-admin-token-0123456789"
# Admin calls are limited per IP (60 a minute by default): the benchmark's own must never be refused.
ADMIN_LIMIT = "1000000/minute"

PLAN = Plan(
    rounds=int(os.environ.get("BENCH_RECORDS_ROUNDS", "5")),
    requests=int(os.environ.get("BENCH_RECORDS_REQUESTS", "120")),  # uncached, per variant per round
    seconds=float(os.environ.get("BENCH_SECONDS", "5")),  # cache hits, per variant per round
)
QUICK = Plan(rounds=2, requests=20, seconds=1.0)


@dataclass(frozen=True)
class Written:
    records: int  # of this run, counted through the admin API
    dropped: int  # by the writer: its queue was full
    seconds: float  # from the last answer until nothing was left in the queue


@dataclass
class Recorder(Variant):
    """A side that may record its answers: every `/chat` it answers is counted, to be counted back."""

    records: bool = False
    sqlite: Path | None = None
    sent: int = 0  # every `/chat` answered by this service, warm-up included
    baseline: int = 0  # records already there at start (a reused PostgreSQL database)
    backlog: int = 0  # the most records still queued at the end of a timed load
    written: Written | None = None  # once the writer's queue was empty at the end
    rows: int | None = None  # in the SQLite file, once the service has stopped

    def loaded(self, result: LoadResult, kind: Kind | None) -> None:
        self.sent += len(result.replies)
        if kind is not None and self.records:
            self.backlog = max(self.backlog, _writer(self)["queued"])

    def started(self) -> None:
        if self.records:
            self.baseline = _recorded(self)

    def finished(self) -> None:
        if self.records:
            self.written = _wait_written(self)

    def totals(self) -> dict[str, float]:
        found: dict[str, float] = {}
        if self.written is not None:
            found[f"{self.key}_answers_sent"] = float(self.sent)
            found[f"{self.key}_records"] = float(self.written.records)
            found[f"{self.key}_records_missing"] = float(self.sent - self.written.records)
            found[f"{self.key}_records_dropped"] = float(self.written.dropped)
            found[f"{self.key}_records_backlog_max"] = float(self.backlog)
            found[f"{self.key}_records_wait_s"] = self.written.seconds
        if self.rows is not None:
            found[f"{self.key}_sqlite_rows"] = float(self.rows)
        return found


def _variants(tmp: Path, postgres_url: str | None) -> list[Recorder]:
    common = {"ADMIN_TOKEN": ADMIN_TOKEN, "RATE_LIMIT_ADMIN": ADMIN_LIMIT, "DATABASE_URL": ""}
    before = Recorder("before", {**common, "RECORD_ANSWERS": "false"})
    data = tmp / "data"
    env = {**common, "RECORD_ANSWERS": "true", "DATA_DIR": str(data)}
    found = [before, Recorder("after", env, records=True, sqlite=data / SQLITE_FILE)]
    if postgres_url:
        env = {**common, "RECORD_ANSWERS": "true", "DATABASE_URL": postgres_url, "DATA_DIR": str(tmp / "pg")}
        found.append(Recorder("postgres", env, records=True))
    return found


def _recorded(variant: Variant) -> int:
    """Answers recorded so far, through the admin API: each lone question is a conversation of its own."""
    reply = httpx.get(
        f"{variant.url}/admin/conversations",
        params={"days": 1, "per_page": 1},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    reply.raise_for_status()
    return int(reply.json()["total"])


def _writer(variant: Variant) -> dict[str, int]:
    """The records writer's own figures (`queued`, `dropped`), from `/health`: no query to the database."""
    reply = httpx.get(f"{variant.url}/health", timeout=30)
    reply.raise_for_status()
    found: dict[str, int] = reply.json()["records"]
    return found


def _wait_written(variant: Recorder, timeout: float = 120.0) -> Written:
    started = time.perf_counter()
    while (state := _writer(variant))["queued"] and time.perf_counter() - started < timeout:
        time.sleep(0.05)
    waited = time.perf_counter() - started
    return Written(_recorded(variant) - variant.baseline, state["dropped"], waited)


def _sqlite_rows(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        (rows,) = connection.execute("SELECT count(*) FROM answers").fetchone()
    finally:
        connection.close()
    return int(rows)


def run(plan: Plan | None = None, postgres_url: str | None = None) -> dict[str, float]:
    plan = plan or PLAN
    postgres_url = postgres_url or os.environ.get("BENCH_POSTGRES_URL") or None
    data = corpus()
    with tempfile.TemporaryDirectory(prefix="bench-records-") as tmp:
        variants = _variants(Path(tmp), postgres_url)
        # Each recording service has counted its records back before it stops (`Recorder.finished`); the
        # SQLite file is read once it has stopped, having written what it still held.
        side_by_side.measure(variants, KINDS, data, Path(tmp), plan)
        for variant in variants:
            if variant.sqlite is not None:
                variant.rows = _sqlite_rows(variant.sqlite)
    return side_by_side.compare(variants, KINDS, RATIOS)


def _table(figures: dict[str, float]) -> tuple[str, int]:
    """The side-by-side table with the records' lines, and how many targets were missed."""
    shown = [(key, label) for key, label in RECORDING if f"{key}_cached_rps" in figures]
    table, missed = side_by_side.table(figures, [BEFORE, *shown], side_by_side.rows(KINDS, TARGETS))
    lines = [table]
    for key, label in shown:
        sent, records = int(figures[f"{key}_answers_sent"]), int(figures[f"{key}_records"])
        missed += sent != records
        extra = ""
        if f"{key}_sqlite_rows" in figures:
            in_file = int(figures[f"{key}_sqlite_rows"])
            extra = f"; {in_file:,} rows in the SQLite file after the service stopped"
        lines.append(
            f"\n{label}: {sent:,} answers sent, {records:,} recorded (admin API total{extra}), "
            f"{int(figures[f'{key}_records_dropped']):,} dropped by the writer (queue full); up to "
            f"{int(figures[f'{key}_records_backlog_max']):,} still queued at the end of a timed load; the "
            f"last written {figures[f'{key}_records_wait_s']:.2f} s after the last answer"
            f"{'' if sent == records else ': RECORDS MISSING'}"
        )
    return "".join(lines) + "\n", missed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__.split("\n\n")[0])
    side_by_side.add_flags(parser, PLAN, KINDS)
    parser.add_argument("--postgres-url", help="also measure recording to this PostgreSQL database")
    args = parser.parse_args(argv)
    plan = side_by_side.chosen(args, PLAN, QUICK)
    figures = run(plan, args.postgres_url)
    text, missed = _table(figures)
    return side_by_side.close("records", figures, text, missed, plan, "per variant")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
