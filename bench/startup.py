"""Start-up: the first start (empty store: embeds the knowledge folder) against a restart (store up to
date: embeds nothing), each to healthy and to its first uncached answer, as real processes."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.server import ROOT, ServerProcess

QUESTIONS = ["What services do you offer?", "What are your support hours?", "How much is the Growth package?"]


@dataclass(frozen=True)
class StartTimes:
    healthy: float
    first_answer: float
    warm_answer: float


def _start(store: Path, knowledge: Path, logs: Path, name: str) -> StartTimes:
    # No API key: the answers come from the extractive tier, so the figures measure the service itself.
    env = {"CHROMA_PATH": str(store), "KNOWLEDGE_DIR": str(knowledge), "GOOGLE_API_KEY": ""}
    server = ServerProcess(env, logs / f"{name}.log")
    try:
        healthy = server.wait_healthy(timeout=300)
        answer = httpx.post(f"{server.url}/chat", json={"message": QUESTIONS[0]}, timeout=120)
        first_answer = time.perf_counter() - server.started
        answer.raise_for_status()
        started = time.perf_counter()
        for question in QUESTIONS[1:]:
            httpx.post(f"{server.url}/chat", json={"message": question, "use_cache": False}, timeout=60)
        warm = (time.perf_counter() - started) / (len(QUESTIONS) - 1)
        return StartTimes(healthy, first_answer, warm)
    finally:
        server.stop()


def run() -> dict[str, float]:
    knowledge = Path(os.environ.get("BENCH_KNOWLEDGE_DIR", ROOT / "knowledge"))
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        store, logs = Path(tmp) / "db", Path(tmp)
        first = _start(store, knowledge, logs, "first")
        restart = _start(store, knowledge, logs, "restart")
    return {
        "first_start_healthy_s": first.healthy,
        "first_start_first_answer_s": first.first_answer,
        "restart_healthy_s": restart.healthy,
        "restart_first_answer_s": restart.first_answer,
        "uncached_answer_s": restart.warm_answer,
        "restart_over_first_start_healthy": restart.healthy / first.healthy,
    }
