"""`python -m bench.versions --base REF`: is the chat as fast as before this change?

The service as it was at a git ref ("before": `python -m api` run in a `git worktree add --detach` checkout of
REF, so that it imports that commit's code, on the same interpreter and virtual environment) against the
working tree ("after"), both running as real processes on 127.0.0.1 for the whole run, each with its own copy
of the benchmark store (an embedded Chroma store is one process's) and its own temporary DATA_DIR, the
environment otherwise the same. After a warm-up they are measured in interleaved rounds, each side going first
in turn: uncached `/chat` one visitor at a time, uncached `/chat/stream` one at a time (each stream read to
its end), both with questions neither side has seen, then cache hits at 16 connections. Ratios are after /
before; the targets say "unchanged within noise", so a miss means a slower change, or a noisy machine: run it
again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench import side_by_side
from bench.client import LoadResult, server_cpu
from bench.corpus import corpus
from bench.server import ROOT
from bench.side_by_side import CACHED, STREAM, UNCACHED, Kind, Plan, Row, Variant

# "Unchanged within noise": on the shared 2-core machine a ratio moves by about 5% run to run; the same commit
# on both sides gave 1.03 to 1.07 for the p50s (bench/README.md).
MAX_P50_RATIO = 1.05  # uncached `/chat` p50, after / before
MAX_STREAM_RATIO = 1.05  # uncached `/chat/stream` p50, after / before
MIN_RPS_RATIO = 0.95  # cache hits req/s, after / before
PACKAGES = ("api", "agent", "rag")  # what each side must import from its own folder
KINDS = (UNCACHED, STREAM, CACHED)
TARGETS = {
    "uncached_p50_ms": ("<=", MAX_P50_RATIO),
    "stream_p50_ms": ("<=", MAX_STREAM_RATIO),
    "cached_rps": (">=", MIN_RPS_RATIO),
}
# The figures compared "after / before", in the order they are printed.
RATIOS = (
    "uncached_p50_ms",
    "uncached_p95_ms",
    "uncached_cpu_ms",
    "stream_p50_ms",
    "stream_cpu_ms",
    "cached_cpu_ms",
    "cached_rps",
)
SIDES = (("before", "before"), ("after", "after"))
ROWS = (
    *side_by_side.rows(KINDS, TARGETS),
    *(
        Row(f"{kind.title}: child processes' CPU ms a request", f"{kind.name}_children_cpu_ms", "{:.3f}")
        for kind in (UNCACHED, CACHED)
    ),
)

PLAN = Plan(
    rounds=int(os.environ.get("BENCH_VERSIONS_ROUNDS", "6")),  # even: each side first as often
    requests=int(os.environ.get("BENCH_VERSIONS_REQUESTS", "120")),  # uncached `/chat`, a side a round
    streams=int(os.environ.get("BENCH_VERSIONS_STREAMS", "120")),  # uncached streams, a side a round
    seconds=float(os.environ.get("BENCH_SECONDS", "5")),  # cache hits, a side a round
)
QUICK = Plan(rounds=2, requests=20, streams=20, seconds=1.0)


@dataclass
class Side(Variant):
    """A side whose child processes' CPU is counted too, load by load."""

    # CPU seconds of the service's child processes (the records writer) during each load, by kind of load.
    children: dict[str, list[float]] = field(default_factory=dict)
    mark: float = 0.0  # their CPU seconds when the load now running started

    def loading(self) -> None:
        self.mark = _children_cpu(self.pid)

    def loaded(self, result: LoadResult, kind: Kind | None) -> None:
        if kind is not None:
            self.children.setdefault(kind.name, []).append(_children_cpu(self.pid) - self.mark)

    def per_request(self, kind: str, replies: int) -> dict[str, float]:
        return {"children_cpu_ms": sum(self.children[kind]) / max(1, replies) * 1000}


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def checkout(ref: str, folder: Path) -> Iterator[str]:
    """A detached worktree of `ref` in `folder`, removed again however the run ends. Yields the commit."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    _git("worktree", "add", "--detach", str(folder), commit)
    try:
        # A `.env` is not in git: the base reads the same one as the working tree, if there is one.
        if (ROOT / ".env").is_file():
            shutil.copy2(ROOT / ".env", folder / ".env")
        yield commit
    finally:
        removed = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
            capture_output=True,
            check=False,
        )
        if removed.returncode:  # the folder went first: forget the worktree all the same
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True, check=False)


def _imports_from(folder: Path) -> None:
    """The editable install maps these packages to this checkout, after the path's own entries: a process
    started in `folder` must still find them there, or "before" would quietly be the working tree."""
    script = "import importlib.util as u\n" + "".join(f"print(u.find_spec({p!r}).origin)\n" for p in PACKAGES)
    found = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.split()
    wrong = [path for path in found if not Path(path).resolve().is_relative_to(folder.resolve())]
    if len(found) != len(PACKAGES) or wrong:
        raise SystemExit(f"a service started in {folder} imports {found}, not its own code")


def _children_cpu(pid: int) -> float:
    """CPU seconds so far of the process's descendants (the records writer runs in a process of its own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue  # it exited meanwhile
    total = 0.0
    pending = [pid]
    while pending:
        parent = pending.pop()
        for kid in [k for k, p in parents.items() if p == parent]:
            try:
                total += server_cpu(kid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            pending.append(kid)
    return total


def _absolute(name: str, default: Path) -> Path:
    """A path setting as the working tree's service would read it, from the environment or the default."""
    return ROOT / (os.environ.get(name) or default)  # an absolute value stays itself; empty: unset


def _variants(tmp: Path) -> list[Side]:
    """Each side with its own DATA_DIR, the environment otherwise the same."""
    # The working tree's exported embedding graph, for both (the environment's, made absolute): a relative
    # path would leave the base's checkout without one, and it would run torch while exporting its own.
    shared = {
        "DATABASE_URL": "",
        "EMBEDDING_CACHE_DIR": str(_absolute("EMBEDDING_CACHE_DIR", Path("models/embeddings"))),
        "MODELS_DIR": str(_absolute("MODELS_DIR", Path("models"))),
    }
    found = []
    for key, folder in (("before", tmp / "base"), ("after", ROOT)):
        data_dir = tmp / key / "data"
        data_dir.mkdir(parents=True)
        found.append(Side(key, {**shared, "DATA_DIR": str(data_dir)}, folder))
    return found


def run(plan: Plan | None = None, base: str | None = None) -> dict[str, float]:
    plan = plan or PLAN
    base = base or os.environ.get("BENCH_VERSIONS_BASE") or "HEAD"
    data = corpus()
    with (
        tempfile.TemporaryDirectory(prefix="bench-versions-") as tmp,
        checkout(base, Path(tmp) / "base") as commit,
    ):
        sys.stderr.write(f"before: {base} ({commit[:12]}) in {Path(tmp) / 'base'}, after: the working tree\n")
        variants = _variants(Path(tmp))
        for variant in variants:
            _imports_from(variant.folder)
        side_by_side.measure(variants, KINDS, data, Path(tmp), plan)
    return side_by_side.compare(variants, KINDS, RATIOS)


def _stop(signum: int, frame: FrameType | None) -> None:
    """A terminated run still stops its services and removes its worktree (the `finally`s run)."""
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the git ref of 'before' (default HEAD)")
    side_by_side.add_flags(parser, PLAN, KINDS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    plan = side_by_side.chosen(args, PLAN, QUICK)
    commit = _git("rev-parse", "--short=12", f"{args.base}^{{commit}}")
    figures = run(plan, args.base)
    table, missed = side_by_side.table(figures, SIDES, ROWS)
    text = f"before: {args.base} ({commit}), after: the working tree\n\n{table}"
    return side_by_side.close("versions", figures, text, missed, plan, "a side", " (unchanged within noise)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
