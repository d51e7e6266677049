"""`python -m bench [NAME ...]`: run the benchmarks (all by default), one line per figure, then a table."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable

from bench import fallback, ingest, startup

BENCHMARKS: dict[str, Callable[[], dict[str, float]]] = {
    "startup": startup.run,
    "fallback": fallback.run,
    "ingest": ingest.run,
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}\n")
        return 2
    rows: list[tuple[str, str, float]] = []
    for name in names:
        for figure, value in BENCHMARKS[name]().items():
            sys.stdout.write(f"{name}.{figure} = {value:.3f}\n")
            sys.stdout.flush()
            rows.append((name, figure, value))
    sys.stdout.write("\n| benchmark | figure | value |\n|---|---|---|\n")
    for name, figure, value in rows:
        sys.stdout.write(f"| {name} | {figure} | {value:.3f} |\n")
    sys.stdout.write(f"\n{platform.machine()}, {platform.python_version()}, {_cores()} cores\n")
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
