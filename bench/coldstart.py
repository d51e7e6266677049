"""Cold start: process start to a healthy `/health` and to the first uncached answer, restarting over the
persisted benchmark store (its knowledge up to date: nothing to embed), against a start with an empty store
and an empty knowledge folder (the floor: interpreter, imports, web stack). Each start is repeated and the
median kept."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.corpus import corpus
from bench.service import BASE_ENV, corpus_env, running

STARTS = 3


def _start(env: dict[str, str], log: Path, question: str) -> tuple[float, float]:
    with running(env, log) as server:
        healthy = server.wait_healthy()
        reply = httpx.post(f"{server.url}/chat", json={"message": question}, timeout=120)
        first_answer = time.perf_counter() - server.started
        reply.raise_for_status()
        assert reply.json()["cached"] is False
        return healthy, first_answer


def run() -> dict[str, float]:
    data = corpus()
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        root = Path(tmp)
        empty_env = {**BASE_ENV, "CHROMA_PATH": str(root / "db"), "KNOWLEDGE_DIR": str(root / "knowledge")}
        (root / "knowledge").mkdir()
        empty = [_start(empty_env, root / f"empty-{n}.log", data.queries[n]) for n in range(STARTS)]
        persisted = [
            _start(corpus_env(data), root / f"store-{n}.log", data.queries[n]) for n in range(STARTS)
        ]
    empty_healthy = statistics.median(h for h, _ in empty)
    empty_answer = statistics.median(a for _, a in empty)
    healthy = statistics.median(h for h, _ in persisted)
    answer = statistics.median(a for _, a in persisted)
    return {
        "chunks": float(data.chunks),
        "healthy_s": healthy,
        "first_answer_s": answer,
        "empty_store_healthy_s": empty_healthy,
        "empty_store_first_answer_s": empty_answer,
        "healthy_over_empty": healthy / empty_healthy,
        "first_answer_over_empty": answer / empty_answer,
    }
