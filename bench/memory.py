"""Memory: the service's peak resident set size (VmHWM) over the persisted benchmark store, after warm-up:
answering uncached and cached questions, plain and streamed, with no local model loaded."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from bench.corpus import corpus
from bench.service import ask, corpus_env, peak_rss_mb, ready

QUESTIONS = 60


def run() -> dict[str, float]:
    data = corpus()
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp,
        ready(corpus_env(data), Path(tmp) / "service.log") as service,
    ):
        idle = peak_rss_mb(service.process.pid)
        for question in data.queries[:QUESTIONS]:
            ask(service, question)
            ask(service, question)  # a cache hit
            httpx.post(
                f"{service.url}/chat/stream", json={"message": question, "use_cache": False}, timeout=120
            ).raise_for_status()
        peak = peak_rss_mb(service.process.pid)
    return {"peak_rss_mb": peak, "ready_rss_mb": idle, "chunks": float(data.chunks)}
