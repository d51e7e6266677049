"""Event loop: latency of `GET /health` while 8 uncached chats run at once (retrieval and extractive
answers in worker threads), against `/health` on an idle service. A blocking model or store call on the
event loop would show here as health checks waiting for it."""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from bench.client import Call, LoadResult, run_load
from bench.corpus import corpus
from bench.service import corpus_env, ready

CHATS = 8
HEALTH_CHECKS = 300


def _health(url: str) -> LoadResult:
    return run_load(url, iter([Call("GET", "/health", kind="health")] * HEALTH_CHECKS), connections=1)


def run() -> dict[str, float]:
    data = corpus()
    with (
        tempfile.TemporaryDirectory(prefix="bench-eventloop-") as tmp,
        ready(corpus_env(data), Path(tmp) / "service.log") as service,
    ):
        idle = _health(service.url)
        stop = threading.Event()
        # Each chat asks a question not asked before: a cache miss, so retrieval and generation run.
        numbered = (f"{q} (visit {n})" for n in itertools.count() for q in data.queries)
        chats = (Call("POST", "/chat", {"message": m, "use_cache": False}, "chat") for m in numbered)
        loaded: dict[str, LoadResult] = {}

        def chat_load() -> None:
            loaded["chats"] = run_load(service.url, _until(chats, stop), connections=CHATS)

        worker = threading.Thread(target=chat_load)
        worker.start()
        try:
            busy = _health(service.url)
        finally:
            stop.set()
            worker.join()
    chats_done = loaded["chats"]
    return {
        "health_p50_ms": busy.percentile(0.5),
        "health_p95_ms": busy.percentile(0.95),
        "health_p99_ms": busy.percentile(0.99),
        "idle_health_p95_ms": idle.percentile(0.95),
        "chats_during_checks": float(len(chats_done.replies)),
        "chat_p50_ms": chats_done.percentile(0.5),
        "chat_errors": float(sum(1 for r in chats_done.replies if r.status != 200)),
    }


def _until(calls: Iterator[Call], stop: threading.Event) -> Iterator[Call]:
    for call in calls:
        if stop.is_set():
            return
        yield call
