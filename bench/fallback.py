"""`python -m bench.fallback`: the local tier's models, each measured in a fresh process through the
service's own loading and generation code: load time, peak memory, tokens/s and response time.

Measures every configured local model that is on disk (FALLBACK_MODEL_NAME, and the default and minimal
models if present in MODELS_DIR or the Hugging Face cache), `--model NAME_OR_FOLDER` ones, and with
`--tiny` a tiny GPT-2 built on the spot (a floor for the harness, not a model to serve).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.server import ROOT

QUESTION = "What does the Growth website package include and how much does it cost?"
RUNS = 3


def _prompt() -> Any:
    from agent.prompting import Prompt
    from rag.chunking import chunk_document
    from rag.embedder import resolve_model_path
    from rag.loading import load, scan
    from rag.tokens import tokens_for

    pricing = next(f for f in scan(ROOT / "knowledge") if f.relative == "pricing.md")
    chunks = chunk_document(load(pricing), 200, 32, tokens_for(resolve_model_path("all-MiniLM-L6-v2")))[:3]
    from rag.retriever import Passage

    passages = tuple(Passage(c.id, c.source, c.title, c.heading_path, c.text, 0.7) for c in chunks)
    return Prompt(QUESTION, passages)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def measure(model: str, max_tokens: int) -> dict[str, float]:
    """In this process: load, then answer RUNS times. Meant to run in a fresh process per model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: F401  (imported before the baseline so that only the model's memory is counted)
    import transformers  # noqa: F401

    from agent.generators.base import GenerationParams
    from agent.generators.local import LocalGenerator
    from agent.settings import AgentSettings

    generator = LocalGenerator(
        model,
        models_dir=AgentSettings().models_dir,
        params=GenerationParams(max_tokens=max_tokens, temperature=0.0),
    )
    prompt = _prompt()
    baseline = _rss_mb()
    started = time.perf_counter()
    generator.preload()
    while generator.status().loaded is not True:
        if generator.status().state == "unavailable":
            raise SystemExit(f"{model}: {generator.status().detail}")
        time.sleep(0.01)
    load_s = time.perf_counter() - started

    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        asyncio.run(generator.generate(prompt, timeout=600))
        times.append(time.perf_counter() - started)
    tokens = generator.tokens_generated
    asyncio.run(generator.aclose())
    return {
        "load_s": load_s,
        "peak_rss_mb": _rss_mb(),
        "model_rss_mb": _rss_mb() - baseline,
        "response_s": sum(times) / len(times),
        "tokens_per_s": tokens / sum(times),
        "tokens_per_answer": tokens / RUNS,
    }


def _configured_models() -> list[str]:
    from agent.generators.local import find_local_weights
    from agent.settings import DEFAULT_LOCAL_MODEL, MINIMAL_LOCAL_MODEL, AgentSettings

    settings = AgentSettings()
    names = dict.fromkeys([settings.local_model_name, DEFAULT_LOCAL_MODEL, MINIMAL_LOCAL_MODEL])
    return [n for n in names if find_local_weights(n, settings.models_dir) is not None]


def _in_fresh_process(model: str, max_tokens: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.fallback", "--worker", model, "--tokens", str(max_tokens)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{model}: {result.stderr.strip().splitlines()[-1:]}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def run(models: list[str] | None = None, tiny: bool = True, max_tokens: int = 64) -> dict[str, float]:
    """Figures keyed `<model>.<figure>`, for `python -m bench`."""
    names = list(models or []) or _configured_models()
    with tempfile.TemporaryDirectory(prefix="bench-fallback-") as tmp:
        if tiny or not names:
            from tests.fakes.tiny_model import build_tiny_gpt2

            names.append(str(build_tiny_gpt2(Path(tmp) / "tiny-gpt2", chat_template=True, never_stops=True)))
        figures: dict[str, float] = {}
        for name in names:
            label = "tiny-gpt2" if name.endswith("tiny-gpt2") else name
            for figure, value in _in_fresh_process(name, max_tokens).items():
                figures[f"{label}.{figure}"] = value
                sys.stdout.write(f"fallback.{label}.{figure} = {value:.3f}\n")
                sys.stdout.flush()
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fallback", description=__doc__)
    parser.add_argument("--model", action="append", help="hub id or folder (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="also measure a tiny GPT-2 built on the spot")
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens per answer")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.stdout.write(json.dumps(measure(args.worker, args.tokens)) + "\n")
        return 0
    figures = run(args.model, tiny=args.tiny, max_tokens=args.tokens)
    sys.stdout.write(
        "\n| model | load s | peak RSS MB | model RSS MB | response s | tokens/s |\n"
        "|---|---|---|---|---|---|\n"
    )
    for label in dict.fromkeys(key.rsplit(".", 1)[0] for key in figures):
        f = {key.rsplit(".", 1)[1]: value for key, value in figures.items() if key.startswith(f"{label}.")}
        sys.stdout.write(
            f"| {label} | {f['load_s']:.2f} | {f['peak_rss_mb']:.0f} | {f['model_rss_mb']:.0f} | "
            f"{f['response_s']:.3f} | {f['tokens_per_s']:.1f} |\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
