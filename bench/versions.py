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
import datetime
import itertools
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench.client import Call, LoadResult, Reply, forever, run_load, server_cpu
from bench.corpus import Corpus, corpus
from bench.server import ROOT, ServerProcess
from bench.service import corpus_env, wait_embedder_ready

# "Unchanged within noise": on the shared 2-core machine a ratio moves by about 5% run to run; the same commit
# on both sides gave 1.03 to 1.07 for the p50s (bench/README.md).
MAX_P50_RATIO = 1.05  # uncached `/chat` p50, after / before
MAX_STREAM_RATIO = 1.05  # uncached `/chat/stream` p50, after / before
MIN_RPS_RATIO = 0.95  # cache hits req/s, after / before
CONNECTIONS = 16
WARM_UP = 20  # uncached questions each service answers (and as many streams) before the first round
PACKAGES = ("api", "agent", "rag")  # what each side must import from its own folder


@dataclass(frozen=True)
class Plan:
    rounds: int = int(os.environ.get("BENCH_VERSIONS_ROUNDS", "6"))  # even: each side first as often
    requests: int = int(os.environ.get("BENCH_VERSIONS_REQUESTS", "120"))  # uncached `/chat`, a side a round
    streams: int = int(os.environ.get("BENCH_VERSIONS_STREAMS", "120"))  # uncached streams, a side a round
    seconds: float = float(os.environ.get("BENCH_SECONDS", "5"))  # cache hits, a side a round


QUICK = Plan(rounds=2, requests=20, streams=20, seconds=1.0)


@dataclass
class Variant:
    key: str  # the figures' prefix
    folder: Path  # the checkout it runs in, whose code it imports
    server: ServerProcess | None = None
    uncached: list[LoadResult] = field(default_factory=list)
    streams: list[LoadResult] = field(default_factory=list)
    cached: list[LoadResult] = field(default_factory=list)
    # CPU seconds of the service's child processes (the records writer) during each load, by kind of load.
    children: dict[str, list[float]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


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


@contextmanager
def _serving(env: dict[str, str], log: Path, folder: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(env, log, cwd=folder)
    try:
        server.wait_healthy()
        wait_embedder_ready(server)
        yield server
    finally:
        server.stop()


def _uncached_ok(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"uncached: status {reply.status}"
    return None if b'"cached":false' in reply.body else "uncached: a cache hit"


def _hit_ok(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"cached: status {reply.status}"
    return None if b'"cached":true' in reply.body else "cached: not a cache hit"


def _stream_ok(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"stream: status {reply.status}"
    text = reply.body.decode()
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    if events[:1] != ["sources"] or events[-1:] != ["done"]:
        return f"stream: events {events[:3]}...{events[-1:]}"
    done = json.loads(text.rsplit("data: ", 1)[1])
    if done.get("status") != "success" or done.get("cached") is not False:
        return f"stream: done {done}"
    return None


def _load(
    variant: Variant,
    calls: Iterator[Call],
    *,
    connections: int,
    what: str,
    seconds: float | None = None,
    measured: bool = True,
) -> LoadResult:
    """One load; a measured one is checked reply by reply and its child processes' CPU kept."""
    assert variant.server is not None
    checks = {"uncached": _uncached_ok, "stream": _stream_ok, "cached": _hit_ok}
    pid = variant.server.process.pid
    children = _children_cpu(pid)
    result = run_load(
        variant.url,
        calls,
        connections=connections,
        seconds=seconds,
        server_pid=pid,
        validate=checks[what] if measured else None,
    )
    if measured:
        variant.children.setdefault(what, []).append(_children_cpu(pid) - children)
    return result


def _asked(path: str, questions: list[str], kind: str) -> Iterator[Call]:
    return iter([Call("POST", path, {"message": q}, kind=kind) for q in questions])


def _warm(variant: Variant, questions: list[str], popular: str) -> None:
    _load(variant, _asked("/chat", questions, "uncached"), what="uncached", connections=1, measured=False)
    streamed = [f"streamed {q}" for q in questions]
    _load(variant, _asked("/chat/stream", streamed, "stream"), what="stream", connections=1, measured=False)
    hit = Call("POST", "/chat", {"message": popular}, kind="cached")
    _load(variant, iter([hit, hit]), what="cached", connections=1, measured=False)
    # Warms the 16 connections' path through the server.
    _load(variant, forever(hit), what="cached", connections=CONNECTIONS, seconds=1.0, measured=False)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000 if ordered else float("nan")


def _per_request_ms(results: list[LoadResult], extra: list[float]) -> tuple[float, float]:
    """Server CPU a request: the service process's, and its child processes'."""
    replies = max(1, sum(len(r.replies) for r in results))
    own = sum(r.server_cpu or 0.0 for r in results)
    return own / replies * 1000, sum(extra) / replies * 1000


def _figures(variant: Variant) -> dict[str, float]:
    times = [r.seconds for result in variant.uncached for r in result.replies]
    streamed = [r.seconds for result in variant.streams for r in result.replies]
    uncached_cpu, uncached_children = _per_request_ms(variant.uncached, variant.children["uncached"])
    stream_cpu, stream_children = _per_request_ms(variant.streams, variant.children["stream"])
    cached_cpu, cached_children = _per_request_ms(variant.cached, variant.children["cached"])
    return {
        "uncached_p50_ms": _pct(times, 0.5),
        "uncached_p95_ms": _pct(times, 0.95),
        "uncached_cpu_ms": uncached_cpu,
        "uncached_children_cpu_ms": uncached_children,
        "uncached_requests": float(len(times)),
        "stream_p50_ms": _pct(streamed, 0.5),
        "stream_p95_ms": _pct(streamed, 0.95),
        "stream_cpu_ms": stream_cpu,
        "stream_children_cpu_ms": stream_children,
        "stream_requests": float(len(streamed)),
        "cached_rps": statistics.median(r.rps for r in variant.cached),
        "cached_p50_ms": statistics.median(r.percentile(0.5) for r in variant.cached),
        "cached_cpu_ms": cached_cpu,
        "cached_children_cpu_ms": cached_children,
        "cached_requests": float(sum(len(r.replies) for r in variant.cached)),
    }


def _report(variant: Variant, what: str, result: LoadResult) -> None:
    speed = f"p50 {result.percentile(0.5):.1f} ms" if what != "cached" else f"{result.rps:.0f} req/s"
    sys.stderr.write(
        f"  {variant.key:6} {what:8} {len(result.replies):5} replies, {speed}, "
        f"server CPU {result.server_cpu_per_request_ms():.3f} ms/req, invalid {len(result.invalid)}\n"
    )


def _absolute(name: str, default: Path) -> Path:
    """A path setting as the working tree's service would read it, from the environment or the default."""
    return ROOT / (os.environ.get(name) or default)  # an absolute value stays itself; empty: unset


def _measure(variants: list[Variant], data: Corpus, tmp: Path, plan: Plan) -> None:
    popular = data.queries[0]
    # Questions neither side has seen: each round's lists go to both sides, never twice to one.
    fresh = (f"{q} (visit {n})" for n in itertools.count() for q in data.queries)
    warm_up = [f"warm-up: {q}" for q in itertools.islice(itertools.cycle(data.queries), WARM_UP)]
    # The working tree's exported embedding graph, for both (the environment's, made absolute): a relative
    # path would leave the base's checkout without one, and it would run torch while exporting its own.
    shared = {
        "DATABASE_URL": "",
        "EMBEDDING_CACHE_DIR": str(_absolute("EMBEDDING_CACHE_DIR", Path("models/embeddings"))),
        "MODELS_DIR": str(_absolute("MODELS_DIR", Path("models"))),
    }
    with ExitStack() as stack:
        for variant in variants:
            store = tmp / variant.key / "chroma"
            shutil.copytree(data.store, store, ignore=shutil.ignore_patterns(".owner.lock"))
            data_dir = tmp / variant.key / "data"
            data_dir.mkdir()
            env = corpus_env(data, **shared, CHROMA_PATH=str(store), DATA_DIR=str(data_dir))
            variant.server = stack.enter_context(_serving(env, tmp / f"{variant.key}.log", variant.folder))
            _warm(variant, warm_up, popular)
        hits = forever(Call("POST", "/chat", {"message": popular}, kind="cached"))
        for number in range(plan.rounds):
            questions = list(itertools.islice(fresh, plan.requests))
            streamed = [f"streamed {q}" for q in itertools.islice(fresh, plan.streams)]
            turn = number % len(variants)
            order = variants[turn:] + variants[:turn]  # each side goes first in turn
            sys.stderr.write(f"round {number + 1}/{plan.rounds}: {', '.join(v.key for v in order)}\n")
            for variant in order:
                calls = _asked("/chat", questions, "uncached")
                variant.uncached.append(_load(variant, calls, connections=1, what="uncached"))
                _report(variant, "uncached", variant.uncached[-1])
            for variant in order:
                calls = _asked("/chat/stream", streamed, "stream")
                variant.streams.append(_load(variant, calls, connections=1, what="stream"))
                _report(variant, "stream", variant.streams[-1])
            for variant in order:
                result = _load(variant, hits, connections=CONNECTIONS, seconds=plan.seconds, what="cached")
                variant.cached.append(result)
                _report(variant, "cached", result)


def run(plan: Plan | None = None, base: str | None = None) -> dict[str, float]:
    plan = plan or Plan()
    base = base or os.environ.get("BENCH_VERSIONS_BASE") or "HEAD"
    data = corpus()
    with (
        tempfile.TemporaryDirectory(prefix="bench-versions-") as tmp,
        checkout(base, Path(tmp) / "base") as commit,
    ):
        sys.stderr.write(f"before: {base} ({commit[:12]}) in {Path(tmp) / 'base'}, after: the working tree\n")
        variants = [Variant("before", Path(tmp) / "base"), Variant("after", ROOT)]
        for variant in variants:
            _imports_from(variant.folder)
        _measure(variants, data, Path(tmp), plan)
    before, after = _figures(variants[0]), _figures(variants[1])
    figures = {f"before_{name}": value for name, value in before.items()}
    figures.update({f"after_{name}": value for name, value in after.items()})
    for name in ("uncached_p50", "uncached_p95", "uncached_cpu", "stream_p50", "stream_cpu", "cached_cpu"):
        figures[f"{name}_ratio"] = after[f"{name}_ms"] / before[f"{name}_ms"]
    figures["cached_rps_ratio"] = after["cached_rps"] / before["cached_rps"]
    results = [r for v in variants for r in [*v.uncached, *v.streams, *v.cached]]
    figures["invalid_replies"] = float(sum(len(r.invalid) for r in results))
    for problem in [p for r in results for p in r.invalid][:5]:
        sys.stderr.write(f"  invalid: {problem}\n")
    return figures


ROWS = (  # title, figure, format, target sign, bound
    ("uncached `/chat` p50 ms", "uncached_p50_ms", "{:.1f}", "<=", MAX_P50_RATIO),
    ("uncached `/chat` p95 ms", "uncached_p95_ms", "{:.1f}", "", 0.0),
    ("uncached `/chat`: server CPU ms a request", "uncached_cpu_ms", "{:.3f}", "", 0.0),
    ("uncached `/chat/stream` p50 ms (whole stream)", "stream_p50_ms", "{:.1f}", "<=", MAX_STREAM_RATIO),
    ("uncached `/chat/stream` p95 ms", "stream_p95_ms", "{:.1f}", "", 0.0),
    ("uncached `/chat/stream`: server CPU ms a request", "stream_cpu_ms", "{:.3f}", "", 0.0),
    (f"cache hits, {CONNECTIONS} connections: req/s", "cached_rps", "{:,.0f}", ">=", MIN_RPS_RATIO),
    ("cache hits: p50 ms", "cached_p50_ms", "{:.2f}", "", 0.0),
    ("cache hits: server CPU ms a request", "cached_cpu_ms", "{:.3f}", "", 0.0),
    ("uncached `/chat`: child processes' CPU ms a request", "uncached_children_cpu_ms", "{:.3f}", "", 0.0),
    ("cache hits: child processes' CPU ms a request", "cached_children_cpu_ms", "{:.3f}", "", 0.0),
)


def _table(figures: dict[str, float]) -> tuple[str, int]:
    """The side-by-side table, and how many targets were missed."""
    lines = ["| figure | before | after | after / before | target |\n|---|---|---|---|---|\n"]
    missed = 0
    for title, name, form, sign, bound in ROWS:
        old, new = figures[f"before_{name}"], figures[f"after_{name}"]
        ratio = new / old if old else float("nan")
        target = ""
        if sign:
            met = ratio <= bound if sign == "<=" else ratio >= bound
            missed += not met
            target = f"{sign} {bound:g}: {'met' if met else 'MISSED'}"
        shown = f"{ratio:.3f}" if old else "-"  # no CPU at all before (no child process): no ratio
        lines.append(f"| {title} | {form.format(old)} | {form.format(new)} | {shown} | {target} |\n")
    return "".join(lines), missed


def _stop(signum: int, frame: FrameType | None) -> None:
    """A terminated run still stops its services and removes its worktree (the `finally`s run)."""
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the git ref of 'before' (default HEAD)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 short rounds")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {Plan().rounds})")
    parser.add_argument("--requests", type=int, help="uncached `/chat` questions a side a round")
    parser.add_argument("--streams", type=int, help="uncached `/chat/stream` questions a side a round")
    parser.add_argument("--seconds", type=float, help="seconds of cache hits a side a round")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    plan = QUICK if args.quick else Plan()
    plan = Plan(
        rounds=args.rounds or plan.rounds,
        requests=args.requests or plan.requests,
        streams=args.streams or plan.streams,
        seconds=args.seconds or plan.seconds,
    )
    commit = _git("rev-parse", "--short=12", f"{args.base}^{{commit}}")
    figures = run(plan, args.base)
    for name, value in figures.items():
        sys.stdout.write(f"versions.{name} = {value:.3f}\n")
    table, missed = _table(figures)
    sys.stdout.write(f"\nbefore: {args.base} ({commit}), after: the working tree\n\n{table}")
    sys.stdout.write(
        f"\n{datetime.date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; {plan.rounds} rounds of {plan.requests} uncached questions, "
        f"{plan.streams} uncached streams and {plan.seconds:g} s of cache hits a side; "
        f"{missed} target(s) missed (unchanged within noise)\n"
    )
    return 1 if missed or figures["invalid_replies"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
