"""Two or more services as real processes, measured in interleaved rounds, compared against targets.

The harness of `bench.records` and `bench.versions`: every side is `python -m api` on 127.0.0.1 for the whole
run, on its own copy of the benchmark store (an embedded Chroma store is one process's). After a warm-up the
sides are measured in rounds, each going first in turn, each kind of load in its turn: questions no side has
seen (the same ones to every side) one at a time, then cache hits at 16 connections. The figures are
percentiles over all rounds' questions, the cache hits' median round and the server's CPU a request; every
later side is compared with the first ("after / before") in a Markdown table with its targets. What a
benchmark adds of its own (records counted back, another commit's checkout, child processes' CPU) it adds
through `Variant`'s hooks.
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
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import Call, LoadResult, Reply, forever, run_load
from bench.corpus import Corpus
from bench.server import ROOT, ServerProcess
from bench.service import corpus_env, wait_embedder_ready

CONNECTIONS = 16  # of the cache hits
WARM_UP = 20  # questions of each kind each service answers before the first round


def uncached_ok(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"uncached: status {reply.status}"
    return None if b'"cached":false' in reply.body else "uncached: a cache hit"


def stream_ok(reply: Reply) -> str | None:
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


def hit_ok(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"cached: status {reply.status}"
    return None if b'"cached":true' in reply.body else "cached: not a cache hit"


@dataclass(frozen=True)
class Kind:
    """One kind of load in a round."""

    name: str  # the figures' word
    title: str  # the table's
    path: str
    check: Callable[[Reply], str | None]
    prefix: str = ""  # before each question: a stream's questions are never `/chat`'s, so never cache hits
    note: str = ""  # after the p50's title
    hits: bool = False  # the popular question at CONNECTIONS for a time; else fresh questions one at a time


UNCACHED = Kind("uncached", "uncached `/chat`", "/chat", uncached_ok)
STREAM = Kind(
    "stream", "uncached `/chat/stream`", "/chat/stream", stream_ok, prefix="streamed ", note=" (whole stream)"
)
CACHED = Kind("cached", "cache hits", "/chat", hit_ok, hits=True)


@dataclass(frozen=True)
class Plan:
    rounds: int
    requests: int  # uncached `/chat` questions, a side a round
    seconds: float  # of cache hits, a side a round
    streams: int = 0  # uncached `/chat/stream` questions, a side a round

    def questions(self, kind: Kind) -> int:
        return self.streams if kind.name == STREAM.name else self.requests


@dataclass
class Variant:
    """One side. A benchmark's subclass adds its own through the hooks: `started`, `loading`, `loaded`,
    `finished`, `per_request`, `totals`."""

    key: str  # the figures' prefix
    env: dict[str, str]  # over the benchmark corpus's
    folder: Path = ROOT  # the checkout it runs in, whose code it imports
    server: ServerProcess | None = None
    results: dict[str, list[LoadResult]] = field(default_factory=dict)  # the measured loads, by kind

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.process.pid

    def load(
        self,
        calls: Iterator[Call],
        *,
        connections: int,
        seconds: float | None = None,
        kind: Kind | None = None,
    ) -> LoadResult:
        """One load; a measured one (of a `kind`) is checked reply by reply and kept, a warm-up's neither."""
        self.loading()
        result = run_load(
            self.url,
            calls,
            connections=connections,
            seconds=seconds,
            server_pid=self.pid,
            validate=kind.check if kind is not None else None,
        )
        if kind is not None:
            self.results.setdefault(kind.name, []).append(result)
        self.loaded(result, kind)
        return result

    def loading(self) -> None:
        """Just before each load, warm-up's included."""

    def loaded(self, result: LoadResult, kind: Kind | None) -> None:
        """Just after each load; `kind` is None for a warm-up's."""

    def started(self) -> None:
        """Once its service is ready, before the warm-up."""

    def finished(self) -> None:
        """After the last round, every service still running."""

    def per_request(self, kind: str, replies: int) -> dict[str, float]:
        """Figures of its own for a kind of load, named without the kind, listed after the server's CPU."""
        return {}

    def totals(self) -> dict[str, float]:
        """Figures of its own for the whole run, named in full, listed after its ratios."""
        return {}


@contextmanager
def serving(env: dict[str, str], log: Path, folder: Path = ROOT) -> Iterator[ServerProcess]:
    """The service run in `folder`, healthy and with its embedder loaded."""
    server = ServerProcess(env, log, cwd=folder)
    try:
        server.wait_healthy()
        wait_embedder_ready(server)
        yield server
    finally:
        server.stop()


def _asked(kind: Kind, questions: list[str]) -> Iterator[Call]:
    return iter(
        [Call("POST", kind.path, {"message": f"{kind.prefix}{q}"}, kind=kind.name) for q in questions]
    )


def _warm(variant: Variant, kinds: Sequence[Kind], questions: list[str], popular: str) -> None:
    for kind in kinds:
        if kind.hits:
            hit = Call("POST", kind.path, {"message": popular}, kind=kind.name)
            variant.load(iter([hit, hit]), connections=1)
            variant.load(forever(hit), connections=CONNECTIONS, seconds=1.0)  # warms the connections' path
        else:
            variant.load(_asked(kind, questions), connections=1)


def _report(variant: Variant, kind: Kind, result: LoadResult, width: int) -> None:
    speed = f"{result.rps:.0f} req/s" if kind.hits else f"p50 {result.percentile(0.5):.1f} ms"
    sys.stderr.write(
        f"  {variant.key:{width}} {kind.name:8} {len(result.replies):5} replies, {speed}, "
        f"server CPU {result.server_cpu_per_request_ms():.3f} ms/req, invalid {len(result.invalid)}\n"
    )


def measure(variants: Sequence[Variant], kinds: Sequence[Kind], data: Corpus, tmp: Path, plan: Plan) -> None:
    """Starts every side, warms it up and runs the rounds; the services stop again when it returns."""
    popular = data.queries[0]
    # Questions no side has seen: each round's lists go to every side, never twice to one.
    fresh = (f"{q} (visit {n})" for n in itertools.count() for q in data.queries)
    warm_up = [f"warm-up: {q}" for q in itertools.islice(itertools.cycle(data.queries), WARM_UP)]
    width = max(len(v.key) for v in variants)
    with ExitStack() as stack:
        for variant in variants:
            # An embedded Chroma store belongs to one process: each service answers from its own copy.
            store = tmp / variant.key / "chroma"
            shutil.copytree(data.store, store, ignore=shutil.ignore_patterns(".owner.lock"))
            env = corpus_env(data, CHROMA_PATH=str(store), **variant.env)
            variant.server = stack.enter_context(serving(env, tmp / f"{variant.key}.log", variant.folder))
            variant.started()
            _warm(variant, kinds, warm_up, popular)
        for number in range(plan.rounds):
            asked = {k.name: list(itertools.islice(fresh, plan.questions(k))) for k in kinds if not k.hits}
            turn = number % len(variants)
            order = [*variants[turn:], *variants[:turn]]  # each side goes first in turn
            sys.stderr.write(f"round {number + 1}/{plan.rounds}: {', '.join(v.key for v in order)}\n")
            for kind in kinds:
                for variant in order:
                    if kind.hits:
                        calls = forever(Call("POST", kind.path, {"message": popular}, kind=kind.name))
                        result = variant.load(calls, connections=CONNECTIONS, seconds=plan.seconds, kind=kind)
                    else:
                        result = variant.load(_asked(kind, asked[kind.name]), connections=1, kind=kind)
                    _report(variant, kind, result, width)
        for variant in variants:
            variant.finished()


def _pct(values: list[float], q: float) -> float:
    """Milliseconds; nearest-rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000 if ordered else float("nan")


def _ratio(new: float, old: float) -> float:
    return new / old if old else float("nan")  # nothing at all before (no child process's CPU): no ratio


def _figures(variant: Variant, kinds: Sequence[Kind]) -> dict[str, float]:
    found: dict[str, float] = {}
    for kind in kinds:
        results = variant.results.get(kind.name, [])
        replies = sum(len(r.replies) for r in results)
        if kind.hits:
            speed = {
                "rps": statistics.median(r.rps for r in results),
                "p50_ms": statistics.median(r.percentile(0.5) for r in results),
            }
        else:
            times = [reply.seconds for r in results for reply in r.replies]
            speed = {"p50_ms": _pct(times, 0.5), "p95_ms": _pct(times, 0.95)}
        cpu = sum(r.server_cpu or 0.0 for r in results) / max(1, replies) * 1000
        mine = {**speed, "cpu_ms": cpu, **variant.per_request(kind.name, replies), "requests": float(replies)}
        found.update({f"{kind.name}_{name}": value for name, value in mine.items()})
    return found


def compare(variants: Sequence[Variant], kinds: Sequence[Kind], ratios: Sequence[str]) -> dict[str, float]:
    """Every side's figures, each later side's `ratios` to the first side's, and the invalid replies."""
    base = _figures(variants[0], kinds)
    found = {f"{variants[0].key}_{name}": value for name, value in base.items()}
    for variant in variants[1:]:
        mine = _figures(variant, kinds)
        found.update({f"{variant.key}_{name}": value for name, value in mine.items()})
        # "after"'s ratios are the benchmark's own (`uncached_p50_ratio`); another side's carry its key.
        prefix = "" if variant.key == "after" else f"{variant.key}_"
        for name in ratios:
            found[f"{prefix}{name.removesuffix('_ms')}_ratio"] = _ratio(mine[name], base[name])
        found.update(variant.totals())
    results = [r for v in variants for kept in v.results.values() for r in kept]
    found["invalid_replies"] = float(sum(len(r.invalid) for r in results))
    for problem in [p for r in results for p in r.invalid][:5]:
        sys.stderr.write(f"  invalid: {problem}\n")
    return found


@dataclass(frozen=True)
class Row:
    title: str
    figure: str  # its name after the side's prefix
    form: str
    sign: str = ""  # "<=" or ">=": the ratio's target, if it has one
    bound: float = 0.0


def rows(kinds: Sequence[Kind], targets: Mapping[str, tuple[str, float]]) -> list[Row]:
    """The table's rows for these kinds of load; `targets`: sign and bound by figure."""
    found = []
    for kind in kinds:
        if kind.hits:
            speed = [(f"{kind.title}, {CONNECTIONS} connections: req/s", "rps", "{:,.0f}")]
            speed.append((f"{kind.title}: p50 ms", "p50_ms", "{:.2f}"))
        else:
            speed = [(f"{kind.title} p50 ms{kind.note}", "p50_ms", "{:.1f}")]
            speed.append((f"{kind.title} p95 ms", "p95_ms", "{:.1f}"))
        for title, name, form in [*speed, (f"{kind.title}: server CPU ms a request", "cpu_ms", "{:.3f}")]:
            figure = f"{kind.name}_{name}"
            found.append(Row(title, figure, form, *targets.get(figure, ("", 0.0))))
    return found


def table(
    figures: Mapping[str, float], sides: Sequence[tuple[str, str]], lines: Sequence[Row]
) -> tuple[str, int]:
    """The side-by-side table of `sides` (key, label; the first is "before"), and how many targets were
    missed."""
    (base, label), others = sides[0], sides[1:]
    head = f"| figure | {label} | " + " | ".join(mine for _, mine in others)
    head += " | " + " | ".join(f"{key} / {base}" for key, _ in others) + " | target |\n"
    found = [head + "|---" * (3 + 2 * len(others)) + "|\n"]
    missed = 0
    for row in lines:
        old = figures[f"{base}_{row.figure}"]
        new = [figures[f"{key}_{row.figure}"] for key, _ in others]
        ratios = [_ratio(value, old) for value in new]
        verdicts = []
        for ratio in ratios if row.sign else []:
            met = ratio <= row.bound if row.sign == "<=" else ratio >= row.bound
            missed += not met
            verdicts.append("met" if met else "MISSED")
        target = f"{row.sign} {row.bound:g}: {', '.join(verdicts)}" if row.sign else ""
        cells = " | ".join(row.form.format(value) for value in [old, *new])
        shown = " | ".join(f"{ratio:.3f}" if old else "-" for ratio in ratios)
        found.append(f"| {row.title} | {cells} | {shown} | {target} |\n")
    return "".join(found), missed


def add_flags(parser: argparse.ArgumentParser, default: Plan, kinds: Sequence[Kind]) -> None:
    """The plan's flags, in place of `default`'s figures."""
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 short rounds")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {default.rounds})")
    parser.add_argument("--requests", type=int, help="uncached `/chat` questions a side a round")
    if STREAM in kinds:
        parser.add_argument("--streams", type=int, help="uncached `/chat/stream` questions a side a round")
    parser.add_argument("--seconds", type=float, help="seconds of cache hits a side a round")


def chosen(args: argparse.Namespace, default: Plan, quick: Plan) -> Plan:
    """The plan the flags ask for: `--quick`'s or the default, each figure given replacing its own."""
    plan = quick if args.quick else default
    return Plan(
        rounds=args.rounds or plan.rounds,
        requests=args.requests or plan.requests,
        seconds=args.seconds or plan.seconds,
        streams=vars(args).get("streams") or plan.streams,
    )


def close(
    name: str, figures: Mapping[str, float], text: str, missed: int, plan: Plan, per: str, note: str = ""
) -> int:
    """The CLI's closing lines: every figure, `text` (the table and what the benchmark says after it), the
    machine and the plan (`per`: "a side", ...), `note` after the targets missed. Returns the exit status: 1
    on a missed target or an invalid reply."""
    for figure, value in figures.items():
        sys.stdout.write(f"{name}.{figure} = {value:.3f}\n")
    streams = f", {plan.streams} uncached streams" if plan.streams else ""
    sys.stdout.write(f"\n{text}")
    sys.stdout.write(
        f"\n{datetime.date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; {plan.rounds} rounds of {plan.requests} uncached questions"
        f"{streams} and {plan.seconds:g} s of cache hits {per}; {missed} target(s) missed{note}\n"
    )
    return 1 if missed or figures["invalid_replies"] else 0
