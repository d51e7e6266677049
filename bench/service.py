"""Starting the service for a benchmark: a real `python -m api` process over the benchmark corpus."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.corpus import Corpus
from bench.server import ServerProcess

# Extractive answers unless a benchmark adds a (fake) Gemini: the figures measure the service itself, and
# no local model is loaded even where one sits in MODELS_DIR. Limits stay on (their cost is measured) but
# high enough for one client sending thousands of requests.
BASE_ENV = {
    "GOOGLE_API_KEY": "",
    "LLM_CHAIN": "gemini,extractive",
    "RATE_LIMIT_CHAT": "1000000/minute",
    "RATE_LIMIT_HISTORY": "1000000/minute",
}


def corpus_env(corpus: Corpus, **extra: str) -> dict[str, str]:
    return {**BASE_ENV, "CHROMA_PATH": str(corpus.store), "KNOWLEDGE_DIR": str(corpus.knowledge), **extra}


@contextmanager
def running(env: dict[str, str], log: Path, module: str = "api") -> Iterator[ServerProcess]:
    server = ServerProcess(env, log, module)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def ready(env: dict[str, str], log: Path) -> Iterator[ServerProcess]:
    """The service, healthy and with its embedder loaded: what a benchmark of answering starts from."""
    with running(env, log) as server:
        server.wait_healthy()
        wait_embedder_ready(server)
        yield server


def wait_embedder_ready(server: ServerProcess, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/health", timeout=5).json().get("embedder") == "ready":
            return
        time.sleep(0.1)
    raise TimeoutError("the embedder never became ready")


def ask(server: ServerProcess, message: str, *, use_cache: bool = True) -> dict[str, object]:
    reply = httpx.post(f"{server.url}/chat", json={"message": message, "use_cache": use_cache}, timeout=120)
    reply.raise_for_status()
    body: dict[str, object] = reply.json()
    return body


def log_events(server: ServerProcess, event: str) -> list[dict[str, object]]:
    """The server's JSON log lines of one event."""
    found = []
    for line in server.log().splitlines():
        if f'"{event}"' in line:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [entry for entry in found if entry.get("event") == event]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")
