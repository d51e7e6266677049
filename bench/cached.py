"""Cached answers: `POST /chat` cache hits at 16 connections, against a bare FastAPI app returning the same
JSON under the same uvicorn settings, measured alternately in one run (each side twice, the better kept)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from bench.client import Call, LoadResult, Reply, forever, run_load
from bench.corpus import corpus
from bench.server import ServerProcess
from bench.service import ask, corpus_env, running

CONNECTIONS = 16
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = 2


def _hit(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"status {reply.status}"
    return None if b'"cached":true' in reply.body else "not a cache hit"


def _measure(server: ServerProcess, question: str) -> LoadResult:
    call = Call("POST", "/chat", {"message": question}, kind="cached")
    run_load(server.url, forever(call), connections=CONNECTIONS, seconds=1.0)  # warm the connections
    return run_load(
        server.url,
        forever(call),
        connections=CONNECTIONS,
        seconds=SECONDS,
        server_pid=server.process.pid,
        validate=_hit,
    )


def _report(name: str, result: LoadResult) -> None:
    sys.stderr.write(
        f"  {name}: {result.rps:.0f} req/s, p50 {result.percentile(0.5):.1f} ms, "
        f"p99 {result.percentile(0.99):.1f} ms, server CPU {result.server_cpu_per_request_ms():.3f} ms/req, "
        f"client CPU {result.client_cpu_share:.0%}, invalid {len(result.invalid)}\n"
    )


def run() -> dict[str, float]:
    data = corpus()
    question = data.queries[0]
    with tempfile.TemporaryDirectory(prefix="bench-cached-") as tmp:
        logs = Path(tmp)
        with running(corpus_env(data), logs / "service.log") as service:
            service.wait_healthy()
            ask(service, question)
            answer = ask(service, question)
            assert answer["cached"] is True, "the second ask was not a cache hit"
            payload = logs / "answer.json"
            payload.write_text(json.dumps(answer))
            bare_env = {"BENCH_PAYLOAD": str(payload)}
            with running(bare_env, logs / "bare.log", "bench.baseline_app") as bare:
                bare.wait_healthy()
                ours: list[LoadResult] = []
                theirs: list[LoadResult] = []
                for _ in range(ROUNDS):
                    ours.append(_measure(service, question))
                    _report("service", ours[-1])
                    theirs.append(_measure(bare, question))
                    _report("bare FastAPI", theirs[-1])
    best, floor = max(ours, key=lambda r: r.rps), max(theirs, key=lambda r: r.rps)
    invalid = sum(len(r.invalid) for r in ours) + sum(len(r.invalid) for r in theirs)
    return {
        "service_rps": best.rps,
        "service_p50_ms": best.percentile(0.5),
        "service_p99_ms": best.percentile(0.99),
        "bare_rps": floor.rps,
        "bare_p50_ms": floor.percentile(0.5),
        "bare_p99_ms": floor.percentile(0.99),
        "rps_ratio": best.rps / floor.rps,
        "server_cpu_ms_per_request": best.server_cpu_per_request_ms(),
        "bare_server_cpu_ms_per_request": floor.server_cpu_per_request_ms(),
        "invalid_replies": float(invalid),
    }
