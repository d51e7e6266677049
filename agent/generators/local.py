"""The local tier: a model on this machine, loaded from files already on disk, one generation at a time.

Two backends share everything here: transformers for Hugging Face folders, llama.cpp (in process) for GGUF
files (`agent.generators.llama_cpp`). The model is loaded lazily on first need (or warmed up in the
background) off the event loop, refused when free memory is short, and unloaded after a spell of disuse. A
request that would wait behind other generations longer than its timeout does not queue: it goes on to the
next tier.

Both backends stream; the plain answer collects the stream, so one stop rule (a new turn) and one cut rule
apply to both: an answer cut short by its time budget or its token limit ends at its last complete sentence
with a note that it was cut, or falls through when no sentence is complete. Decoding stops a margin inside the
chain's budget, so that the chain never throws away a generation that ran on past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from agent.errors import FallThroughError, GenerationError, RetryableError, TierUnavailable
from agent.generators.base import GenerationParams, StreamingGenerator, TierStatus
from agent.memory import available_memory_bytes
from agent.prompting import CompactPrompt, ContextBudget, Prompt, compact

log = structlog.get_logger(__name__)

# Models keep writing new "turns" after answering, or echo prompt markup: cut the reply where one starts.
STOP_MARKERS = (
    "\nQuestion:",
    "\nVisitor's question:",
    "\n\n\n",
    "\nUser:",
    "\nVisitor:",
    "\nReference documents",
    "<document",
    "</document",
    "<conversation",
    "</conversation",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|user|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "[INST]",
)
CUT_NOTE = " \u2026"  # ends an answer cut short by time or length: the visitor sees it is incomplete
Backend = Literal["auto", "llama_cpp", "transformers"]
Finish = Literal["stop", "length", "time", "cancelled"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
_LOAD_OVERHEAD = 1.2  # activations, tokenizer, allocator slack
_EWMA = 0.3  # weight of the newest generation in the running mean duration
# The generation hands its text back this long before the chain's budget ends, and decoding stops this long
# (plus two of its recent steps) before that: the chain, which waits a little past the budget, always gets it.
HANDOFF_SECONDS = 0.05
_MIN_SECONDS = 0.2  # less time than this left to generate is not worth starting
_GGUF_SOURCE = re.compile(r"^[\w.-]+/[\w.-]+/(?:[\w.-]+/)*[\w.-]+\.gguf$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019\u00bb)\]]*(?=\s)|(?=\n)")


def model_slug(name: str) -> str:
    """The folder name of a hub model inside MODELS_DIR."""
    return name.replace("/", "--")


def gguf_source(name: str) -> tuple[str, str] | None:
    """(repository, file) for a GGUF file on the hub, named `owner/repo/file.gguf`; None for anything else."""
    if not _GGUF_SOURCE.match(name) or Path(name).expanduser().exists():
        return None
    owner, repo, filename = name.split("/", 2)
    return f"{owner}/{repo}", filename


def gguf_target(name: str, models_dir: Path) -> Path | None:
    """Where download-models puts a hub GGUF file: MODELS_DIR/owner--repo/file.gguf."""
    source = gguf_source(name)
    return models_dir / model_slug(source[0]) / source[1] if source else None


def _in_folder(folder: Path) -> Path | None:
    """A Hugging Face model folder (config.json) as it is, else the one .gguf file it holds."""
    if (folder / "config.json").is_file():
        return folder
    ggufs = sorted(p for p in folder.glob("*.gguf") if p.is_file())
    return ggufs[0] if len(ggufs) == 1 else None


def find_local_weights(name: str, models_dir: Path | None = None) -> Path | None:
    """The model folder or .gguf file if it is on this disk: a path, MODELS_DIR or the Hugging Face cache."""
    path = Path(name).expanduser()
    if path.is_file():
        return path if path.suffix.lower() == ".gguf" else None
    if path.is_dir():
        return _in_folder(path)
    source = gguf_source(name)
    if models_dir is not None:
        target = gguf_target(name, models_dir)
        if target is not None and target.is_file():
            return target
        if source is None and (models_dir / model_slug(name)).is_dir():
            found = _in_folder(models_dir / model_slug(name))
            if found is not None:
                return found
    if source is None and name.count("/") != 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    if source is not None:
        cached = try_to_load_from_cache(source[0], source[1])
        return Path(cached) if isinstance(cached, str) else None
    config = try_to_load_from_cache(name, "config.json")
    return Path(config).parent if isinstance(config, str) else None


def display_name(name: str) -> str:
    """What health and answers call the model: a GGUF model by its file name, others as configured."""
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        return path.name
    if path.is_dir() and not (path / "config.json").is_file():
        found = _in_folder(path)
        if found is not None:
            return found.name
    return name


def estimate_load_bytes(folder: Path, target_bytes_per_param: int) -> int:
    """Memory the loaded model will take: weight files scaled to the dtype it is loaded in."""
    files = [p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file()]
    if any(p.suffix == ".safetensors" for p in files):  # a folder may hold both formats: one is loaded
        files = [p for p in files if p.suffix == ".safetensors"]
    on_disk = sum(p.stat().st_size for p in files)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    stored = _BYTES_PER_PARAM.get(str(config.get("torch_dtype") or config.get("dtype") or "float32"), 4)
    return int(on_disk / stored * target_bytes_per_param * _LOAD_OVERHEAD)


def process_rss_bytes() -> int | None:
    """This process's resident memory now (not its peak): the memory a load really took is the difference."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class DecodeRun:
    """One generation, shared by the event loop and the generation thread: the stop request, the time
    limit, the tokens produced and why decoding ended. Backends call `step()` for every new token, or
    `check()` when they count the tokens themselves."""

    def __init__(self, deadline: float, max_tokens: int) -> None:
        self.deadline = deadline  # monotonic time by which decoding must have ended
        self.max_tokens = max_tokens
        self.stop = threading.Event()
        self.tokens = 0
        self.finish: Finish | None = None
        self._last: float | None = None
        self._step = 0.0  # recent slowest step: remembers a spike, forgets it slowly

    def step(self) -> bool:
        """Count a token, then `check()`."""
        self.tokens += 1
        return self.check()

    def check(self) -> bool:
        """Called after each token: False when decoding must end now: asked to stop, or the next step, as
        slow as the slowest recent one (twice over, for safety), might not end before the deadline."""
        now = time.monotonic()
        if self._last is not None:  # the first token's time is the prompt's, not a decoding step's
            self._step = max(now - self._last, self._step * 0.9)
        self._last = now
        if self.stop.is_set():
            self.finish = self.finish or "cancelled"
            return False
        if now + 2 * self._step > self.deadline:
            self.finish = "time"
            return False
        return True

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


class LocalBackend(Protocol):
    """What a local runtime provides; `LocalGenerator` does the rest. All calls run on the generation
    thread, one at a time."""

    name: str  # shown in health: "transformers", "llama.cpp"

    @property
    def loaded(self) -> bool: ...

    def prepare(self) -> None:
        """Import the runtime's libraries: before the memory baseline, so that a load measures the model."""

    def estimate_bytes(self) -> int | None:
        """Memory a first load is expected to take; None where it need not be checked (a GPU)."""

    def load(self) -> None:
        """Load the model; OSError, ValueError or RuntimeError for files that cannot be loaded."""

    def unload(self) -> None: ...

    def decode(self, prompt: Prompt, run: DecodeRun, emit: Callable[[str], None]) -> None:
        """Generate, handing each piece of text to `emit`, until the model ends its answer (set
        `run.finish = "stop"`), `run.max_tokens` (`"length"`), or `run.step()`/`run.check()` says to stop
        (which sets `run.finish` itself)."""


class LocalGenerator(StreamingGenerator):
    provider = "local"

    def __init__(
        self,
        model_name: str,
        *,
        models_dir: Path | None = None,
        params: GenerationParams | None = None,
        idle_seconds: float = 0.0,
        memory_reserve_mb: int = 256,
        memory_recheck_seconds: float = 60.0,
        backend: Backend = "auto",
        context: ContextBudget | None = None,
        context_window: int = 2048,
        threads: int = 0,
    ) -> None:
        self.model = display_name(model_name)
        self._name = model_name
        self._models_dir = models_dir
        self._params = params or GenerationParams()
        self._idle_seconds = idle_seconds
        self._memory_reserve = memory_reserve_mb * 1024 * 1024
        self._backend_choice = backend
        self._context = context or ContextBudget()
        self._context_window = context_window
        self._threads = threads
        self._backend: LocalBackend | None = None
        self._loading = False
        self._weights: Path | None = None
        self._located = False
        self._missing = "weights not on disk"  # why the backend cannot be used, when it cannot
        self._refusal: str | None = None  # why the model may not load right now (memory)
        self._refused_at = 0.0
        self._recheck_seconds = memory_recheck_seconds  # memory frees up: a refusal is not forever
        self._broken: str | None = None  # why it can never load (bad files): permanent until restart
        self._measured_bytes: int | None = None  # what loading and first use really took, for reloads
        self._rss_before_load: int | None = None
        self._waiting = 0  # generations running or queued, counted on the event loop
        self._mean_seconds: float | None = None
        self.tokens_generated = 0  # new tokens produced since start, for throughput figures
        self._last_used = 0.0
        self._unload_timer: threading.Timer | None = None
        # CPU generation runs one at a time, and loading and unloading happen on the same thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")

    # -- state ---------------------------------------------------------------------------------

    @property
    def backend_name(self) -> str | None:
        return self._backend.name if self._backend is not None else None

    @property
    def _loaded(self) -> object | None:
        """The loaded backend, or None: what the tests and health look at."""
        return self._backend if self._backend is not None and self._backend.loaded else None

    def status(self) -> TierStatus:
        backend = self._locate()
        if self._loaded is not None:
            return TierStatus("ready", f"loaded ({self.backend_name})", loaded=True)
        if self._broken:
            return TierStatus("unavailable", self._broken, loaded=False)
        if backend is None:
            return TierStatus("unavailable", self._missing, loaded=False)
        if self._refusal and time.monotonic() - self._refused_at < self._recheck_seconds:
            return TierStatus("unavailable", self._refusal, loaded=False)
        detail = "loading" if self._loading else "loads on first use"
        return TierStatus("idle", f"{detail} ({backend.name})", loaded=False)

    def _locate(self) -> LocalBackend | None:
        """Looked up once: adding weights later takes a restart."""
        if not self._located:
            self._located = True
            self._weights = find_local_weights(self._name, self._models_dir)
            if self._weights is None:
                log.warning(
                    "local_model_skipped",
                    model=self._name,
                    reason="weights not on disk (FALLBACK_MODEL_NAME, MODELS_DIR); the local tier is skipped",
                )
            else:
                self._backend = self._choose_backend(self._weights)
        return self._backend

    def _choose_backend(self, weights: Path) -> LocalBackend | None:
        gguf = weights.suffix.lower() == ".gguf"
        choice = self._backend_choice
        if choice == "auto":
            choice = (
                "llama_cpp" if gguf and importlib.util.find_spec("llama_cpp") is not None else "transformers"
            )
        if choice == "llama_cpp":
            if not gguf:
                self._missing = "llama.cpp loads .gguf files; this model is a Hugging Face folder"
            elif importlib.util.find_spec("llama_cpp") is None:
                self._missing = "llama-cpp-python is not installed (pip install '.[llama]')"
            else:
                from agent.generators.llama_cpp import LlamaCppBackend

                return LlamaCppBackend(
                    weights,
                    self._params,
                    self._context,
                    context_window=self._context_window,
                    threads=self._threads,
                )
        elif gguf and not all(importlib.util.find_spec(m) is not None for m in ("gguf", "accelerate")):
            self._missing = (
                "transformers reads .gguf files only with the gguf and accelerate packages installed"
            )
        else:
            return TransformersBackend(weights, self._params, self._context, threads=self._threads)
        log.warning("local_model_skipped", model=self._name, reason=self._missing)
        return None

    # -- generation ----------------------------------------------------------------------------

    def _admit(self, timeout: float) -> LocalBackend:
        """Refuse now rather than queue a visitor behind generations that would outlast the timeout."""
        backend = self._locate()
        if self._broken:
            raise TierUnavailable(self._broken, reason="load_failed")
        if backend is None:
            raise TierUnavailable(f"local model {self.model}: {self._missing}", reason="no_weights")
        if self._waiting:
            mean = self._mean_seconds
            # Unknown speed counts as too slow: better the next tier now than a visitor left waiting.
            if mean is None or (self._waiting + 1) * mean > timeout:
                raise TierUnavailable("local model busy", reason="busy")
        return backend

    async def stream(self, prompt: Prompt, *, timeout: float) -> AsyncIterator[str]:
        backend = self._admit(timeout)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        ends_at = time.monotonic() + timeout - HANDOFF_SECONDS  # the text is handed back by then
        run = DecodeRun(ends_at - HANDOFF_SECONDS, self._params.max_tokens)

        def emit(piece: str | None) -> None:  # called on the generation thread
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, piece)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                run.stop.set()

        self._waiting += 1
        finished = loop.run_in_executor(self._executor, self._generate_blocking, backend, prompt, run, emit)
        # Read its outcome even when the stream stops waiting for it, so that no error goes unretrieved.
        finished.add_done_callback(lambda future: future.cancelled() or future.exception())
        cutter, gate = StopCutter(), SentenceGate()
        finish: Finish | None = None  # decided here: the thread may still be writing `run.finish`
        try:
            while True:
                try:
                    piece = await asyncio.wait_for(pieces.get(), max(0.0, ends_at - time.monotonic()))
                except TimeoutError:
                    finish = "time"  # a step or the prompt took longer than foreseen: keep what is there
                    break
                if piece is None:
                    await finished  # the thread is done: raises what went wrong there
                    finish = run.finish or "stop"
                    break
                released = gate.feed(cutter.feed(piece))
                if released:
                    yield released
                if cutter.stopped:
                    finish = "stop"  # the model began a new turn: the answer is complete
                    break
            run.stop.set()
            if finish != "stop":
                if not gate.released:  # "cut", not "timeout": it ended cleanly, inside the chain's budget
                    raise FallThroughError(
                        f"local model ran out of {'tokens' if finish == 'length' else 'time'} "
                        f"before a complete sentence ({run.tokens} tokens)",
                        reason="cut",
                    )
                log.info("local_answer_cut", model=self.model, finish=finish, tokens=run.tokens)
                yield gate.cut()
                return
            tail = gate.feed(cutter.finish()) + gate.finish()
            if tail.strip():
                yield tail.rstrip()
            elif not gate.released:
                raise FallThroughError("local model produced no text", reason="empty")
        finally:
            run.stop.set()  # the consumer may have left early: let the generation end
            self._waiting -= 1
            self._schedule_unload()

    def _generate_blocking(
        self, backend: LocalBackend, prompt: Prompt, run: DecodeRun, emit: Callable[[str | None], None]
    ) -> None:
        try:
            if run.time_left() < _MIN_SECONDS:
                raise TierUnavailable("waited too long behind other generations", reason="busy")
            self._load(backend)
            if run.time_left() < _MIN_SECONDS:
                raise RetryableError(
                    "loading the local model used up the time", reason="loading", unhealthy=False
                )
            started = time.monotonic()
            try:
                backend.decode(prompt, run, emit)
            except GenerationError:
                raise
            # The runtimes raise their own classes (a chat template's jinja2 error, ggml's RuntimeError, a
            # prompt too long for the window): any of them fails this request, classified once, here.
            except Exception as exc:
                log.error("local_generation_failed", model=self.model, error=f"{type(exc).__name__}: {exc}")
                raise FallThroughError(
                    f"local generation failed: {type(exc).__name__}", reason="error"
                ) from exc
            elapsed = time.monotonic() - started
            self.tokens_generated += run.tokens
            self._mean_seconds = (
                elapsed if self._mean_seconds is None else _EWMA * elapsed + (1 - _EWMA) * self._mean_seconds
            )
            self._last_used = time.monotonic()
            self._measure(after_first_use=True)
        finally:
            emit(None)  # the end of the stream, whatever happened

    # -- loading and unloading (on the generation thread) --------------------------------------

    def _load(self, backend: LocalBackend) -> None:
        if backend.loaded:
            return
        if self._broken:
            raise TierUnavailable(self._broken, reason="load_failed")
        backend.prepare()
        # A measured load beats any estimate from the files: the figure from the first load is used again.
        needed = self._measured_bytes or backend.estimate_bytes()
        free = None if needed is None else available_memory_bytes()
        if needed is not None and free is not None and free - self._memory_reserve < needed:
            self._refusal = (
                f"not enough free memory: needs about {needed // 2**20} MB, "
                f"{max(0, free - self._memory_reserve) // 2**20} MB available"
            )
            self._refused_at = time.monotonic()
            log.error("local_model_refused", model=self.model, reason=self._refusal)
            raise TierUnavailable(self._refusal, reason="low_memory")
        self._refusal = None
        self._loading = True
        log.info(
            "local_model_loading",
            model=self.model,
            backend=backend.name,
            estimated_mb=None if needed is None else needed // 2**20,
            measured=self._measured_bytes is not None,
        )
        started = time.monotonic()
        self._rss_before_load = process_rss_bytes()
        try:
            backend.load()
        except (OSError, ValueError, RuntimeError) as exc:
            self._broken = f"failed to load: {type(exc).__name__}"
            log.error("local_model_load_failed", model=self.model, error=str(exc))
            raise TierUnavailable(self._broken, reason="load_failed") from exc
        finally:
            self._loading = False
        self._last_used = time.monotonic()
        self._measure(after_first_use=False)
        log.info(
            "local_model_ready",
            model=self.model,
            backend=backend.name,
            seconds=round(time.monotonic() - started, 2),
            rss_growth_mb=None if self._measured_bytes is None else self._measured_bytes // 2**20,
        )

    def _measure(self, *, after_first_use: bool) -> None:
        """The memory the model took: resident growth since just before loading, measured after the load and
        again after its first generation (weights mapped from the file are read in on first use)."""
        if self._rss_before_load is None:
            return
        now = process_rss_bytes()
        if now is not None:
            self._measured_bytes = max(self._measured_bytes or 0, now - self._rss_before_load)
        if after_first_use:
            self._rss_before_load = None  # later growth is the service's, not the model's

    def preload(self) -> None:
        """Warm up in the background; failures are logged and show in the status."""

        def warm() -> None:
            backend = self._locate()
            if backend is not None:
                with contextlib.suppress(TierUnavailable):  # already logged, and reported by status()
                    self._load(backend)

        if self._locate() is not None:
            self._executor.submit(warm)
            self._schedule_unload()

    def _schedule_unload(self) -> None:
        if self._idle_seconds <= 0:
            return
        if self._unload_timer is not None:
            self._unload_timer.cancel()
        timer = threading.Timer(self._idle_seconds, self._request_unload)
        timer.daemon = True
        self._unload_timer = timer
        timer.start()

    def _request_unload(self) -> None:
        with contextlib.suppress(RuntimeError):  # the executor is shutting down
            self._executor.submit(self._unload_if_idle)

    def _unload_if_idle(self) -> None:
        backend = self._backend
        if backend is None or not backend.loaded:
            return
        if time.monotonic() - self._last_used < self._idle_seconds * 0.99:
            return
        backend.unload()
        self._rss_before_load = None
        gc.collect()
        log.info("local_model_unloaded", model=self.model, idle_seconds=self._idle_seconds)

    async def aclose(self) -> None:
        if self._unload_timer is not None:
            self._unload_timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


class StopCutter:
    """Cuts streamed text where the model starts a new turn. Text that might be the start of a stop
    marker is held back until the next piece shows whether it is; leading blank lines are not a turn."""

    def __init__(self, markers: tuple[str, ...] = STOP_MARKERS) -> None:
        self._markers = markers
        self._buffer = ""
        self._started = False
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self._buffer += text
        if not self._started:
            self._buffer = self._buffer.lstrip()
            self._started = bool(self._buffer)
        found = [i for i in (self._buffer.find(m) for m in self._markers) if i != -1]
        if found:
            released, self._buffer, self.stopped = self._buffer[: min(found)], "", True
            return released
        hold = max(
            (n for m in self._markers for n in range(1, len(m)) if self._buffer.endswith(m[:n])), default=0
        )
        released, self._buffer = (
            self._buffer[: len(self._buffer) - hold],
            self._buffer[len(self._buffer) - hold :],
        )
        return released

    def finish(self) -> str:
        rest, self._buffer = ("" if self.stopped else self._buffer), ""
        return rest


class SentenceGate:
    """Releases streamed text up to its last complete sentence (or line) only. Released text cannot be taken
    back, so this is what lets an answer cut short by time or length end at a sentence."""

    def __init__(self) -> None:
        self._held = ""
        self.released = False  # some text went out: a cut answer has at least one sentence

    def feed(self, text: str) -> str:
        self._held += text
        end = max((m.end() for m in _SENTENCE_END.finditer(self._held)), default=0)
        if not self._held[:end].strip():
            return ""
        out, self._held = self._held[:end], self._held[end:]
        if not self.released:
            out = out.lstrip()
        self.released = True
        return out

    def finish(self) -> str:
        """The answer ended by itself: the rest goes out as it is."""
        rest, self._held = self._held, ""
        if not self.released:
            rest = rest.lstrip()
        self.released = self.released or bool(rest.strip())
        return rest

    def cut(self) -> str:
        """The answer was cut short: the unfinished sentence is dropped and a note says so."""
        self._held = ""
        return CUT_NOTE


def _cut_at_stop(text: str) -> str:
    cutter = StopCutter()
    return cutter.feed(text) + cutter.finish()


class TransformersBackend:
    """A Hugging Face causal LM through transformers: a model folder, or a GGUF file dequantized on load
    (`gguf_file=`; needs the gguf and accelerate packages)."""

    name = "transformers"

    def __init__(
        self, path: Path, params: GenerationParams, context: ContextBudget, *, threads: int = 0
    ) -> None:
        self._path = path
        self._gguf = path.suffix.lower() == ".gguf"
        self._params = params
        self._context = context
        self._threads = threads
        self._model: tuple[Any, Any] | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def prepare(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers  # noqa: F401  (its import is not the model's memory)

        if self._threads > 0:
            # Oversubscribed torch threads collapse on a busy machine (one forward pass 20x slower).
            torch.set_num_threads(self._threads)

    def _on_gpu(self) -> bool:
        import torch

        return bool(torch.cuda.is_available())

    def estimate_bytes(self) -> int | None:
        if self._on_gpu():
            return None
        if self._gguf:
            from agent.generators.llama_cpp import read_gguf

            return int(read_gguf(self._path).parameters * 4 * _LOAD_OVERHEAD)  # dequantized to float32
        return estimate_load_bytes(self._path, 4)

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        on_gpu = self._on_gpu()
        folder = self._path.parent if self._gguf else self._path
        extra = {"gguf_file": self._path.name} if self._gguf else {}
        dtype = torch.float16 if on_gpu and not self._gguf else torch.float32  # half only where it is fast
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, low_cpu_mem_usage=True, dtype=dtype, **extra
        )
        if on_gpu:
            model.to("cuda")  # type: ignore[arg-type]
        model.eval()  # type: ignore[no-untyped-call]
        self._model = (tokenizer, model)

    def unload(self) -> None:
        self._model = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def decode(self, prompt: Prompt, run: DecodeRun, emit: Callable[[str], None]) -> None:
        import torch

        assert self._model is not None, "load() first"
        tokenizer, model = self._model
        window = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        max_new = min(run.max_tokens, window // 2)
        inputs = self._encode(tokenizer, prompt, limit=window - max_new)
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        prompt_len = inputs["input_ids"].shape[-1]
        eos = tokenizer.eos_token_id
        params = self._params
        sampling: dict[str, Any] = (
            {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": params.top_k,
            }
            if params.temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
                eos_token_id=eos,
                repetition_penalty=params.repetition_penalty,
                streamer=_streamer(tokenizer, emit),
                # Our own time rule rather than `max_time`: it stops a margin inside the budget.
                stopping_criteria=_stopping(run),
                **sampling,
            )
        new = output[0][prompt_len:]
        run.tokens = int(new.shape[-1])
        if run.finish is None:
            ended = run.tokens > 0 and eos is not None and int(new[-1]) in _ids(eos)
            run.finish = "length" if run.tokens >= max_new and not ended else "stop"

    def _encode(self, tokenizer: Any, prompt: Prompt, limit: int) -> dict[str, Any]:
        """The compact prompt, through the chat template when the tokenizer has one; passages are dropped
        until it fits `limit` tokens."""
        budget = self._context
        while True:
            shown: CompactPrompt = compact(prompt, budget)
            if getattr(tokenizer, "chat_template", None):
                encoded = tokenizer.apply_chat_template(
                    shown.messages(), add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
            else:
                encoded = tokenizer(shown.plain_text(), return_tensors="pt")
            if encoded["input_ids"].shape[-1] <= limit or budget.passages == 0:
                break
            budget = budget.smaller()  # drop the least relevant passage until it fits
        if encoded["input_ids"].shape[-1] > limit:
            encoded = {k: v[:, -limit:] for k, v in encoded.items()}
        return dict(encoded)


def _ids(eos: Any) -> set[int]:
    return {int(i) for i in eos} if isinstance(eos, list | tuple) else {int(eos)}


def _streamer(tokenizer: Any, emit: Callable[[str], None]) -> Any:
    from transformers import TextStreamer

    class QueueStreamer(TextStreamer):
        """Hands each decoded piece to the event loop instead of printing it."""

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                emit(text)

    return QueueStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _stopping(run: DecodeRun) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnRun(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = not run.step()
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnRun()])
