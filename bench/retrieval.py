"""Uncached retrieval: the retrieval step inside the running service (hybrid by default, read from its
`chat_answered` log lines) against the raw floor, the embedding library's encode plus Chroma's query in a
plain loop over the same store and questions. Also the end-to-end latency of an uncached extractive `/chat`,
one visitor at a time."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import corpus
from bench.raw_retrieval import WARM_UP
from bench.server import ROOT
from bench.service import ask, corpus_env, log_events, ready

PAUSE = 0.03  # seconds between questions in the paced floor: about an uncached answer's other work


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


def _raw(store: Path, queries: Path, backend: str, pause: float = 0.0) -> list[float]:
    command = [sys.executable, "-m", "bench.raw_retrieval", str(store), str(queries), "--backend", backend]
    result = subprocess.run(
        [*command, "--pause", str(pause)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds: list[float] = json.loads(result.stdout.splitlines()[-1])["seconds"]
    return seconds


def run() -> dict[str, float]:
    data = corpus()
    questions = data.queries
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        listed = Path(tmp) / "queries.json"
        listed.write_text(json.dumps(questions))
        with ready(corpus_env(data), Path(tmp) / "service.log") as service:
            for question in questions[-WARM_UP:]:
                ask(service, question, use_cache=False)
            loaded = log_events(service, "embedder_ready")
            backend = "onnx" if loaded and loaded[-1].get("backend") == "onnx" else "sentence-transformers"
            end_to_end = []
            for question in questions[:-WARM_UP]:
                started = time.perf_counter()
                ask(service, question, use_cache=False)
                end_to_end.append(time.perf_counter() - started)
            logged = log_events(service, "chat_answered")[WARM_UP:]
        inside = [float(str(entry["retrieval_seconds"])) for entry in logged if "retrieval_seconds" in entry]
        floor = _raw(data.store, listed, backend)
        # A service idles between visitors; the same loop with a pause between questions shows that cost.
        paced = _raw(data.store, listed, backend, pause=PAUSE)
        st_floor = backend == "sentence-transformers"
        reference = floor if st_floor else _raw(data.store, listed, "sentence-transformers")
    figures = {
        "service_p50_ms": _pct(inside, 0.5),
        "service_p95_ms": _pct(inside, 0.95),
        "raw_p50_ms": _pct(floor, 0.5),
        "raw_p95_ms": _pct(floor, 0.95),
        "p50_ratio": statistics.median(inside) / statistics.median(floor),
        "p95_ratio": _pct(inside, 0.95) / _pct(floor, 0.95),
        "raw_paced_p50_ms": _pct(paced, 0.5),
        "p50_ratio_to_paced": statistics.median(inside) / statistics.median(paced),
        "raw_sentence_transformers_p50_ms": _pct(reference, 0.5),
        "service_over_sentence_transformers_p50": statistics.median(inside) / statistics.median(reference),
        "chat_uncached_p50_ms": _pct(end_to_end, 0.5),
        "chat_uncached_p95_ms": _pct(end_to_end, 0.95),
        "queries": float(len(inside)),
    }
    sys.stderr.write(f"  query embedding in the service: {backend}; {len(inside)} questions\n")
    return figures
