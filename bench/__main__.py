"""`python -m bench [NAME ...]`: run the benchmarks (the service's by default), one line per figure, then a
table with each target and whether it was met. Exits 1 when a target is missed."""

from __future__ import annotations

import datetime
import operator
import os
import platform
import sys
from collections.abc import Callable

from bench import (
    cached,
    coldstart,
    crawl,
    eventloop,
    fallback,
    ingest,
    load,
    memory,
    records,
    retrieval,
    startup,
    versions,
)

BENCHMARKS: dict[str, Callable[[], dict[str, float]]] = {
    "cached": cached.run,
    "retrieval": retrieval.run,
    "coldstart": coldstart.run,
    "memory": memory.run,
    "eventloop": eventloop.run,
    "load": load.run,
    "records": records.run,
    "startup": startup.run,
    "fallback": fallback.run,
    "crawl": crawl.run,
    "ingest": ingest.run,
    "versions": versions.run,
}
# Re-ingesting the whole SciFact set takes many minutes, and `versions` compares with a git ref
# (BENCH_VERSIONS_BASE, default HEAD) that only the one running it knows: by name only.
DEFAULT = [name for name in BENCHMARKS if name not in ("ingest", "versions")]

Check = tuple[Callable[[float, float], bool], float, str]
TARGETS: dict[str, Check] = {
    "cached.rps_ratio": (operator.ge, 0.8, ">="),
    "cached.invalid_replies": (operator.eq, 0.0, "=="),
    "retrieval.p50_ratio": (operator.le, 1.15, "<="),
    "retrieval.p95_ratio": (operator.le, 1.15, "<="),
    "coldstart.healthy_s": (operator.lt, 1.5, "<"),
    "coldstart.first_answer_s": (operator.lt, 4.0, "<"),
    "memory.peak_rss_mb": (operator.le, 700.0, "<="),
    "eventloop.health_p95_ms": (operator.lt, 100.0, "<"),
    "eventloop.chat_errors": (operator.eq, 0.0, "=="),
    "load.server_errors": (operator.eq, 0.0, "=="),
    "load.invalid": (operator.eq, 0.0, "=="),
    "crawl.unchanged_fetched": (operator.eq, 0.0, "=="),  # a re-crawl of an unchanged site: only 304s
    "records.uncached_p50_ratio": (operator.le, records.MAX_P50_RATIO, "<="),
    "records.cached_rps_ratio": (operator.ge, records.MIN_RPS_RATIO, ">="),
    "records.after_records_missing": (operator.eq, 0.0, "=="),
    "records.postgres_uncached_p50_ratio": (operator.le, records.MAX_P50_RATIO, "<="),
    "records.postgres_cached_rps_ratio": (operator.ge, records.MIN_RPS_RATIO, ">="),
    "records.postgres_records_missing": (operator.eq, 0.0, "=="),
    "records.invalid_replies": (operator.eq, 0.0, "=="),
    "versions.uncached_p50_ratio": (operator.le, versions.MAX_P50_RATIO, "<="),
    "versions.stream_p50_ratio": (operator.le, versions.MAX_STREAM_RATIO, "<="),
    "versions.cached_rps_ratio": (operator.ge, versions.MIN_RPS_RATIO, ">="),
    "versions.invalid_replies": (operator.eq, 0.0, "=="),
}


def main(argv: list[str]) -> int:
    names = argv or DEFAULT
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}\n")
        return 2
    rows: list[tuple[str, float, str]] = []
    missed = 0
    for name in names:
        for figure, value in BENCHMARKS[name]().items():
            key = f"{name}.{figure}"
            verdict = ""
            if key in TARGETS:
                check, bound, sign = TARGETS[key]
                met = check(value, bound)
                missed += not met
                verdict = f"{sign} {bound:g}: {'met' if met else 'MISSED'}"
            sys.stdout.write(f"{key} = {value:.3f}{'  (' + verdict + ')' if verdict else ''}\n")
            sys.stdout.flush()
            rows.append((key, value, verdict))
    sys.stdout.write("\n| figure | value | target |\n|---|---|---|\n")
    for key, value, verdict in rows:
        sys.stdout.write(f"| {key} | {value:.3f} | {verdict} |\n")
    sys.stdout.write(
        f"\n{datetime.date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; {missed} target(s) missed\n"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
