"""Load: a bounded run of mixed requests (cache hits, uncached questions, streamed answers) at 32
connections, with Gemini (a fake over the real protocol, in its own process) failing a fifth of its calls
with 503. Every reply is checked: no 5xx, every answer a real one, every stream complete."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.client import Call, Reply, run_load
from bench.corpus import corpus
from bench.server import ROOT
from bench.service import ask, corpus_env, ready

REQUESTS = int(os.environ.get("BENCH_LOAD_REQUESTS", "2000"))
CONNECTIONS = 32
FAILURE_RATE = 0.2
MIX = {"cached": 0.5, "uncached": 0.3, "stream": 0.2}
PROVIDERS = {"gemini", "extractive"}


def _calls(queries: list[str]) -> list[Call]:
    chance = random.Random(7)
    popular = queries[:20]
    fresh = iter(f"{q} (visit {n})" for n in range(REQUESTS) for q in queries)
    kinds = chance.choices(list(MIX), weights=list(MIX.values()), k=REQUESTS)
    calls = []
    for kind in kinds:
        if kind == "cached":
            calls.append(Call("POST", "/chat", {"message": chance.choice(popular)}, kind))
        elif kind == "uncached":
            calls.append(Call("POST", "/chat", {"message": next(fresh)}, kind))
        else:
            calls.append(Call("POST", "/chat/stream", {"message": chance.choice(queries)}, kind))
    return calls


def validate(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"{reply.call.kind}: status {reply.status}"
    if reply.call.kind == "stream":
        text = reply.body.decode()
        events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
        if events[:1] != ["sources"] or "token" not in events or events[-1] != "done":
            return f"stream: events {events[:3]}...{events[-1:]}"
        done = json.loads(text.rsplit("data: ", 1)[1])
        if done.get("status") == "success" and _no_match(done):
            return None
        if done.get("status") != "success" or done["model_info"]["provider"] not in PROVIDERS:
            return f"stream: done {done}"
        return None
    body = json.loads(reply.body)
    if body.get("status") != "success" or not str(body.get("response", "")).strip():
        return f"{reply.call.kind}: {body.get('status')} {body.get('response')!r:.60}"
    if _no_match(body):
        return None
    if not body.get("sources") or body["model_info"]["provider"] not in PROVIDERS:
        return f"{reply.call.kind}: sources {len(body.get('sources') or [])}, {body['model_info']}"
    return None


def _no_match(reply: dict[str, Any]) -> bool:
    """The service's honest "I don't know": a right answer to a question the knowledge does not cover (a
    few of the benchmark's made-up variants of real questions end up so)."""
    info = reply.get("model_info") or {}
    return bool(info.get("provider") == "none" and info.get("model") == "no-match")


def run() -> dict[str, float]:
    data = corpus()
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_llm", str(FAILURE_RATE)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        gemini = fake.stdout.readline().strip()
        env = corpus_env(
            data, GOOGLE_API_KEY="bench-key", GEMINI_BASE_URL=gemini, LLM_CHAIN="gemini,extractive"
        )
        with (
            tempfile.TemporaryDirectory(prefix="bench-load-") as tmp,
            ready(env, Path(tmp) / "service.log") as service,
        ):
            ask(service, "warm-up: " + data.queries[-1])
            result = run_load(
                service.url,
                iter(_calls(data.queries)),
                connections=CONNECTIONS,
                server_pid=service.process.pid,
                validate=validate,
            )
            stats = httpx.get(f"{service.url}/stats/llm", timeout=10).json()
    finally:
        fake.terminate()
        fake.wait()
    statuses = result.statuses()
    for problem in result.invalid[:5]:
        sys.stderr.write(f"  invalid: {problem}\n")
    tiers = stats.get("tiers", {})
    gemini_tier = tiers.get("gemini", {})
    sys.stderr.write(f"  statuses {dict(statuses)}; llm stats {json.dumps(stats)[:400]}\n")
    figures = {
        "requests": float(len(result.replies)),
        "server_errors": float(sum(n for status, n in statuses.items() if status >= 500)),
        "invalid": float(len(result.invalid)),
        "rps": result.rps,
        "p50_ms": result.percentile(0.5),
        "p95_ms": result.percentile(0.95),
        "p99_ms": result.percentile(0.99),
    }
    for kind in MIX:
        figures[f"{kind}_p50_ms"] = result.percentile(0.5, kind)
        figures[f"{kind}_p95_ms"] = result.percentile(0.95, kind)
    figures["gemini_attempts"] = float(gemini_tier.get("attempts", 0))
    figures["gemini_failures"] = float(gemini_tier.get("failures_total", 0))
    figures["gemini_retries"] = float(gemini_tier.get("retries", 0))
    figures["fallback_rate"] = float(stats.get("fallback_rate", 0.0))
    return figures
