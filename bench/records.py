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
import datetime
import itertools
import math
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.client import Call, LoadResult, Reply, forever, run_load
from bench.corpus import Corpus, corpus
from bench.server import ServerProcess
from bench.service import corpus_env, ready

MAX_P50_RATIO = 1.05  # uncached p50, after / before
MIN_RPS_RATIO = 0.95  # cached throughput, after / before
CONNECTIONS = 16
WARM_UP = 20  # uncached questions each service answers before the first round
SQLITE_FILE = "records.sqlite3"  # agent.records.settings.SQLITE_FILE, under DATA_DIR
ADMIN_TOKEN = "bench-records-admin-token-0123456789"
# Admin calls are limited per IP (60 a minute by default): the benchmark's own must never be refused.
ADMIN_LIMIT = "1000000/minute"


@dataclass(frozen=True)
class Plan:
    rounds: int = int(os.environ.get("BENCH_RECORDS_ROUNDS", "5"))
    requests: int = int(os.environ.get("BENCH_RECORDS_REQUESTS", "120"))  # uncached, per variant per round
    seconds: float = float(os.environ.get("BENCH_SECONDS", "5"))  # cache hits, per variant per round


QUICK = Plan(rounds=2, requests=20, seconds=1.0)


@dataclass
class Variant:
    key: str  # the figures' prefix
    env: dict[str, str]
    records: bool
    sqlite: Path | None = None
    server: ServerProcess | None = None
    sent: int = 0  # every `/chat` answered by this service, warm-up included
    baseline: int = 0  # records already there at start (a reused PostgreSQL database)
    backlog: int = 0  # the most records still queued at the end of a timed load
    uncached: list[LoadResult] = field(default_factory=list)
    cached: list[LoadResult] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


def _variants(tmp: Path, postgres_url: str | None) -> list[Variant]:
    common = {"ADMIN_TOKEN": ADMIN_TOKEN, "RATE_LIMIT_ADMIN": ADMIN_LIMIT, "DATABASE_URL": ""}
    before = Variant("before", {**common, "RECORD_ANSWERS": "false"}, False)
    data = tmp / "data"
    after = Variant(
        "after",
        {**common, "RECORD_ANSWERS": "true", "DATA_DIR": str(data)},
        True,
        sqlite=data / SQLITE_FILE,
    )
    found = [before, after]
    if postgres_url:
        env = {**common, "RECORD_ANSWERS": "true", "DATABASE_URL": postgres_url, "DATA_DIR": str(tmp / "pg")}
        found.append(Variant("postgres", env, True))
    return found


def _uncached_ok(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"uncached: status {reply.status}"
    return None if b'"cached":false' in reply.body else "uncached: a cache hit"


def _hit_ok(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"cached: status {reply.status}"
    return None if b'"cached":true' in reply.body else "cached: not a cache hit"


def _load(
    variant: Variant,
    calls: Iterator[Call],
    *,
    connections: int,
    seconds: float | None = None,
    check: bool = True,
    hits: bool = False,
) -> LoadResult:
    assert variant.server is not None
    result = run_load(
        variant.url,
        calls,
        connections=connections,
        seconds=seconds,
        server_pid=variant.server.process.pid,
        validate=(_hit_ok if hits else _uncached_ok) if check else None,
    )
    variant.sent += len(result.replies)
    return result


def _chats(questions: list[str]) -> Iterator[Call]:
    return iter([Call("POST", "/chat", {"message": q}, kind="uncached") for q in questions])


def _warm(variant: Variant, questions: list[str], popular: str) -> None:
    _load(variant, _chats(questions), connections=1, check=False)
    hit = Call("POST", "/chat", {"message": popular}, kind="cached")
    _load(variant, iter([hit, hit]), connections=1, check=False)
    _load(variant, forever(hit), connections=CONNECTIONS, seconds=1.0, hits=True)  # warm the connections


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


def _note_backlog(variant: Variant) -> None:
    if variant.records:
        variant.backlog = max(variant.backlog, _writer(variant)["queued"])


@dataclass(frozen=True)
class Written:
    records: int  # of this run, counted through the admin API
    dropped: int  # by the writer: its queue was full
    seconds: float  # from the last answer until nothing was left in the queue


def _wait_written(variant: Variant, timeout: float = 120.0) -> Written:
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


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000 if ordered else float("nan")


def _figures(variant: Variant) -> dict[str, float]:
    times = [r.seconds for result in variant.uncached for r in result.replies]
    uncached_cpu = sum(r.server_cpu or 0.0 for r in variant.uncached) / max(1, len(times))
    hits = sum(len(r.replies) for r in variant.cached)
    cached_cpu = sum(r.server_cpu or 0.0 for r in variant.cached) / max(1, hits)
    return {
        "uncached_p50_ms": _pct(times, 0.5),
        "uncached_p95_ms": _pct(times, 0.95),
        "uncached_cpu_ms": uncached_cpu * 1000,
        "uncached_requests": float(len(times)),
        "cached_rps": statistics.median(r.rps for r in variant.cached),
        "cached_p50_ms": statistics.median(r.percentile(0.5) for r in variant.cached),
        "cached_cpu_ms": cached_cpu * 1000,
        "cached_requests": float(hits),
    }


def _report(variant: Variant, what: str, result: LoadResult) -> None:
    speed = f"p50 {result.percentile(0.5):.1f} ms" if what == "uncached" else f"{result.rps:.0f} req/s"
    sys.stderr.write(
        f"  {variant.key:8} {what:8} {len(result.replies):5} replies, {speed}, "
        f"server CPU {result.server_cpu_per_request_ms():.3f} ms/req, invalid {len(result.invalid)}\n"
    )


def _measure(
    variants: list[Variant], data: Corpus, tmp: Path, plan: Plan
) -> tuple[dict[str, Written], dict[str, int]]:
    """Runs the rounds. Returns what each recording variant wrote (services running), and the rows of each
    SQLite file (services stopped)."""
    popular = data.queries[0]
    # Questions neither service has seen: each round's list is sent to every variant, never twice to one.
    fresh = (f"{q} (visit {n})" for n in itertools.count() for q in data.queries)
    warm_up = [f"warm-up: {q}" for q in itertools.islice(itertools.cycle(data.queries), WARM_UP)]
    with ExitStack() as stack:
        for variant in variants:
            # An embedded Chroma store belongs to one process: each service answers from its own copy.
            store = tmp / variant.key / "chroma"
            shutil.copytree(data.store, store, ignore=shutil.ignore_patterns(".owner.lock"))
            env = corpus_env(data, CHROMA_PATH=str(store), **variant.env)
            variant.server = stack.enter_context(ready(env, tmp / f"{variant.key}.log"))
            if variant.records:
                variant.baseline = _recorded(variant)
            _warm(variant, warm_up, popular)
        hits = forever(Call("POST", "/chat", {"message": popular}, kind="cached"))
        for number in range(plan.rounds):
            questions = list(itertools.islice(fresh, plan.requests))
            turn = number % len(variants)
            order = variants[turn:] + variants[:turn]  # each variant goes first in turn
            sys.stderr.write(f"round {number + 1}/{plan.rounds}: {', '.join(v.key for v in order)}\n")
            for variant in order:
                variant.uncached.append(_load(variant, _chats(questions), connections=1))
                _note_backlog(variant)
                _report(variant, "uncached", variant.uncached[-1])
            for variant in order:
                result = _load(variant, hits, connections=CONNECTIONS, seconds=plan.seconds, hits=True)
                variant.cached.append(result)
                _note_backlog(variant)
                _report(variant, "cached", result)
        written = {v.key: _wait_written(v) for v in variants if v.records}
        # Leaving the stack stops the services: each writes what it still holds before it exits.
    return written, {v.key: _sqlite_rows(v.sqlite) for v in variants if v.sqlite is not None}


def run(plan: Plan | None = None, postgres_url: str | None = None) -> dict[str, float]:
    plan = plan or Plan()
    postgres_url = postgres_url or os.environ.get("BENCH_POSTGRES_URL") or None
    data = corpus()
    with tempfile.TemporaryDirectory(prefix="bench-records-") as tmp:
        variants = _variants(Path(tmp), postgres_url)
        written, in_files = _measure(variants, data, Path(tmp), plan)
    figures: dict[str, float] = {}
    base = _figures(variants[0])
    figures.update({f"before_{name}": value for name, value in base.items()})
    for variant in variants[1:]:
        mine = _figures(variant)
        figures.update({f"{variant.key}_{name}": value for name, value in mine.items()})
        prefix = "" if variant.key == "after" else f"{variant.key}_"
        figures[f"{prefix}uncached_p50_ratio"] = mine["uncached_p50_ms"] / base["uncached_p50_ms"]
        figures[f"{prefix}uncached_cpu_ratio"] = mine["uncached_cpu_ms"] / base["uncached_cpu_ms"]
        figures[f"{prefix}cached_rps_ratio"] = mine["cached_rps"] / base["cached_rps"]
        figures[f"{prefix}cached_cpu_ratio"] = mine["cached_cpu_ms"] / base["cached_cpu_ms"]
        if variant.key in written:
            done = written[variant.key]
            figures[f"{variant.key}_answers_sent"] = float(variant.sent)
            figures[f"{variant.key}_records"] = float(done.records)
            figures[f"{variant.key}_records_missing"] = float(variant.sent - done.records)
            figures[f"{variant.key}_records_dropped"] = float(done.dropped)
            figures[f"{variant.key}_records_backlog_max"] = float(variant.backlog)
            figures[f"{variant.key}_records_wait_s"] = done.seconds
        if variant.key in in_files:
            figures[f"{variant.key}_sqlite_rows"] = float(in_files[variant.key])
    figures["invalid_replies"] = float(
        sum(len(r.invalid) for v in variants for r in [*v.uncached, *v.cached])
    )
    for problem in [p for v in variants for r in [*v.uncached, *v.cached] for p in r.invalid][:5]:
        sys.stderr.write(f"  invalid: {problem}\n")
    return figures


def _table(figures: dict[str, float]) -> tuple[str, int]:
    """The side-by-side table, and how many targets were missed."""
    labels = (("after", "after: SQLite"), ("postgres", "after: PostgreSQL"))
    shown = [(key, label) for key, label in labels if f"{key}_cached_rps" in figures]
    head = "| figure | before: RECORD_ANSWERS=false | " + " | ".join(label for _, label in shown)
    head += " | " + " | ".join(f"{key} / before" for key, _ in shown) + " | target |\n"
    head += "|---" * (3 + 2 * len(shown)) + "|\n"
    rows = [
        ("uncached `/chat` p50 ms", "uncached_p50_ms", "{:.1f}", "<=", MAX_P50_RATIO),
        ("uncached `/chat` p95 ms", "uncached_p95_ms", "{:.1f}", "", 0.0),
        ("uncached: server CPU ms a request", "uncached_cpu_ms", "{:.3f}", "", 0.0),
        (f"cache hits, {CONNECTIONS} connections: req/s", "cached_rps", "{:,.0f}", ">=", MIN_RPS_RATIO),
        ("cache hits: p50 ms", "cached_p50_ms", "{:.2f}", "", 0.0),
        ("cache hits: server CPU ms a request", "cached_cpu_ms", "{:.3f}", "", 0.0),
    ]
    missed = 0
    lines = [head]
    for title, name, form, sign, bound in rows:
        cells = [form.format(figures[f"before_{name}"])]
        cells += [form.format(figures[f"{key}_{name}"]) for key, _ in shown]
        ratios = [figures[f"{key}_{name}"] / figures[f"before_{name}"] for key, _ in shown]
        verdicts = []
        for ratio in ratios if sign else []:
            met = ratio <= bound if sign == "<=" else ratio >= bound
            missed += not met
            verdicts.append("met" if met else "MISSED")
        target = f"{sign} {bound:g}: {', '.join(verdicts)}" if sign else ""
        lines.append(
            f"| {title} | {' | '.join(cells)} | {' | '.join(f'{r:.3f}' for r in ratios)} | {target} |\n"
        )
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
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 short rounds")
    parser.add_argument("--postgres-url", help="also measure recording to this PostgreSQL database")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {Plan().rounds})")
    parser.add_argument("--requests", type=int, help="uncached questions per variant per round")
    parser.add_argument("--seconds", type=float, help="seconds of cache hits per variant per round")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    plan = Plan(
        rounds=args.rounds or plan.rounds,
        requests=args.requests or plan.requests,
        seconds=args.seconds or plan.seconds,
    )
    figures = run(plan, args.postgres_url)
    for name, value in figures.items():
        sys.stdout.write(f"records.{name} = {value:.3f}\n")
    table, missed = _table(figures)
    sys.stdout.write(f"\n{table}")
    sys.stdout.write(
        f"\n{datetime.date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; {plan.rounds} rounds of {plan.requests} uncached questions and "
        f"{plan.seconds:g} s of cache hits per variant; {missed} target(s) missed\n"
    )
    return 1 if missed or figures["invalid_replies"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
