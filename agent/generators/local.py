"""A local Hugging Face causal LM, loaded from files already on disk, one generation at a time.

Loaded lazily on first need (or warmed up in the background), refused when free memory is short,
unloaded after a spell of disuse. A request that would wait behind other generations longer than its
timeout does not queue: it goes on to the next tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from agent.errors import FallThroughError, RetryableError, TierUnavailable
from agent.generators.base import GenerationParams, TierStatus
from agent.memory import available_memory_bytes
from agent.prompting import Prompt

log = structlog.get_logger(__name__)

# Base models keep writing new "turns" after answering; cut the reply where one starts.
_STOP_MARKERS = ("\nQuestion:", "\nVisitor's question:", "\n\n\n", "<documents>", "\nUser:", "\nVisitor:")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
_LOAD_OVERHEAD = 1.2  # activations, tokenizer, allocator slack
_EWMA = 0.3  # weight of the newest generation in the running mean duration


def model_slug(name: str) -> str:
    """The folder name of a hub model inside MODELS_DIR."""
    return name.replace("/", "--")


def find_local_weights(name: str, models_dir: Path | None = None) -> Path | None:
    """The model folder if its weights are on this disk: a folder, MODELS_DIR, or the Hugging Face cache."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path if (path / "config.json").is_file() else None
    if models_dir is not None and (models_dir / model_slug(name) / "config.json").is_file():
        return models_dir / model_slug(name)
    if name.count("/") != 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(name, "config.json")
    return Path(config).parent if isinstance(config, str) else None


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


class LocalGenerator:
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
    ) -> None:
        self.model = model_name
        self._models_dir = models_dir
        self._params = params or GenerationParams()
        self._idle_seconds = idle_seconds
        self._memory_reserve = memory_reserve_mb * 1024 * 1024
        self._loaded: tuple[Any, Any] | None = None
        self._loading = False
        self._weights: Path | None = None
        self._located = False
        self._refusal: str | None = None  # why the model may not load right now (memory)
        self._refused_at = 0.0
        self._recheck_seconds = memory_recheck_seconds  # memory frees up: a refusal is not forever
        self._broken: str | None = None  # why it can never load (bad files): permanent until restart
        self._waiting = 0  # generations running or queued, counted on the event loop
        self._mean_seconds: float | None = None
        self.tokens_generated = 0  # new tokens produced since start, for throughput figures
        self._last_used = 0.0
        self._unload_timer: threading.Timer | None = None
        # CPU generation runs one at a time, and loading and unloading happen on the same thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> TierStatus:
        if self._loaded is not None:
            return TierStatus("ready", "loaded", loaded=True)
        if self._broken:
            return TierStatus("unavailable", self._broken, loaded=False)
        if self._locate() is None:
            return TierStatus("unavailable", "weights not on disk", loaded=False)
        if self._refusal and time.monotonic() - self._refused_at < self._recheck_seconds:
            return TierStatus("unavailable", self._refusal, loaded=False)
        return TierStatus("idle", "loading" if self._loading else "loads on first use", loaded=False)

    def _locate(self) -> Path | None:
        """Looked up once: adding weights later takes a restart."""
        if not self._located:
            self._weights = find_local_weights(self.model, self._models_dir)
            self._located = True
            if self._weights is None:
                log.warning(
                    "local_model_skipped",
                    model=self.model,
                    reason="weights not on disk (FALLBACK_MODEL_NAME, MODELS_DIR); the local tier is skipped",
                )
        return self._weights

    # -- generation ----------------------------------------------------------------------------

    def _admit(self, timeout: float) -> None:
        """Refuse now rather than queue a visitor behind generations that would outlast the timeout."""
        if self._locate() is None:
            raise TierUnavailable(f"local model {self.model} is not on disk", reason="no_weights")
        if self._broken:
            raise TierUnavailable(self._broken, reason="load_failed")
        if self._waiting:
            mean = self._mean_seconds
            # Unknown speed counts as too slow: better the next tier now than a visitor left waiting.
            if mean is None or (self._waiting + 1) * mean > timeout:
                raise TierUnavailable("local model busy", reason="busy")

    async def generate(self, prompt: Prompt, *, timeout: float) -> str:
        self._admit(timeout)
        self._waiting += 1
        deadline = time.monotonic() + timeout
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._generate_blocking, prompt, deadline)
        finally:
            self._waiting -= 1
            self._schedule_unload()

    async def stream(self, prompt: Prompt, *, timeout: float) -> AsyncIterator[str]:
        self._admit(timeout)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        stop = threading.Event()

        def emit(piece: str | None) -> None:  # called on the generation thread
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        self._waiting += 1
        deadline = time.monotonic() + timeout
        finished = loop.run_in_executor(self._executor, self._generate_blocking, prompt, deadline, emit, stop)
        cutter = StopCutter()
        try:
            while (piece := await pieces.get()) is not None:
                released = cutter.feed(piece)
                if released:
                    yield released
                if cutter.stopped:
                    stop.set()  # the model began a new turn: no need to generate it
                    break
            await finished  # raises what went wrong on the generation thread
            tail = cutter.finish()
            if tail:
                yield tail
        finally:
            stop.set()  # the consumer may have left early: let the generation end
            self._waiting -= 1
            self._schedule_unload()

    def _generate_blocking(
        self,
        prompt: Prompt,
        deadline: float,
        emit: Callable[[str | None], None] | None = None,
        stop: threading.Event | None = None,
    ) -> str:
        try:
            return self._generate_on_thread(prompt, deadline, emit, stop)
        finally:
            if emit is not None:
                emit(None)  # the end of the stream, whatever happened

    def _generate_on_thread(
        self,
        prompt: Prompt,
        deadline: float,
        emit: Callable[[str | None], None] | None,
        stop: threading.Event | None,
    ) -> str:
        if deadline - time.monotonic() < 0.2:
            raise TierUnavailable("waited too long behind other generations", reason="busy")
        tokenizer, model = self._load()
        import torch

        remaining = deadline - time.monotonic()
        if remaining < 0.2:
            raise RetryableError(
                "loading the local model used up the time", reason="timeout", unhealthy=False
            )
        window = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        max_new = min(self._params.max_tokens, window // 2)
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
        extras: dict[str, Any] = {}
        if emit is not None:
            extras["streamer"] = _streamer(tokenizer, emit)
        if stop is not None:
            extras["stopping_criteria"] = _stopping(stop)
        started = time.monotonic()
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new,
                max_time=remaining,  # stops on time: a running CPU generation cannot be cancelled
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
                eos_token_id=eos,
                repetition_penalty=params.repetition_penalty,
                **sampling,
                **extras,
            )
        elapsed = time.monotonic() - started
        self.tokens_generated += int(output.shape[-1] - prompt_len)
        self._mean_seconds = (
            elapsed if self._mean_seconds is None else (_EWMA * elapsed + (1 - _EWMA) * self._mean_seconds)
        )
        self._last_used = time.monotonic()
        text = tokenizer.decode(output[0][prompt_len:], skip_special_tokens=True)
        answer = _cut_at_stop(text).strip()
        if not answer:
            raise FallThroughError("local model produced no text", reason="empty")
        return answer

    @staticmethod
    def _encode(tokenizer: Any, prompt: Prompt, limit: int) -> dict[str, Any]:
        """Chat template when the tokenizer has one, a plain prompt otherwise; fit `limit` tokens."""
        passages = prompt.passages
        while True:
            current = dataclasses.replace(prompt, passages=passages)
            if getattr(tokenizer, "chat_template", None):
                messages = [
                    {"role": "system", "content": current.system},
                    {"role": "user", "content": current.user_message()},
                ]
                encoded = tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
            else:
                encoded = tokenizer(current.plain_text(), return_tensors="pt")
            if encoded["input_ids"].shape[-1] <= limit or not passages:
                break
            passages = passages[:-1]  # drop the least relevant passage until it fits
        if encoded["input_ids"].shape[-1] > limit:
            encoded = {k: v[:, -limit:] for k, v in encoded.items()}
        return dict(encoded)

    # -- loading and unloading (on the generation thread) --------------------------------------

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is not None:
            return self._loaded
        if self._broken:
            raise TierUnavailable(self._broken, reason="load_failed")
        path = self._locate()
        if path is None:
            raise TierUnavailable(f"local model {self.model} is not on disk", reason="no_weights")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        on_gpu = torch.cuda.is_available()
        dtype = torch.float16 if on_gpu else torch.float32  # half precision only where it is fast
        needed = estimate_load_bytes(path, 2 if on_gpu else 4)
        free = None if on_gpu else available_memory_bytes()
        if free is not None and free - self._memory_reserve < needed:
            self._refusal = (
                f"not enough free memory: needs about {needed // 2**20} MB, "
                f"{max(0, free - self._memory_reserve) // 2**20} MB available"
            )
            self._refused_at = time.monotonic()
            log.error("local_model_refused", model=self.model, reason=self._refusal)
            raise TierUnavailable(self._refusal, reason="low_memory")
        self._refusal = None
        self._loading = True
        log.info("local_model_loading", model=self.model, estimated_mb=needed // 2**20, gpu=on_gpu)
        started = time.monotonic()
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, low_cpu_mem_usage=True, dtype=dtype
            )
        except (OSError, ValueError, RuntimeError) as exc:
            self._broken = f"failed to load: {type(exc).__name__}"
            log.error("local_model_load_failed", model=self.model, error=str(exc))
            raise TierUnavailable(self._broken, reason="load_failed") from exc
        finally:
            self._loading = False
        if on_gpu:
            model.to("cuda")  # type: ignore[arg-type]
        model.eval()  # type: ignore[no-untyped-call]
        self._loaded = (tokenizer, model)
        self._last_used = time.monotonic()
        log.info("local_model_ready", model=self.model, seconds=round(time.monotonic() - started, 2))
        return self._loaded

    def preload(self) -> None:
        """Warm up in the background; failures are logged and show in the status."""

        def warm() -> None:
            with contextlib.suppress(TierUnavailable):  # already logged, and reported by status()
                self._load()

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
        if self._loaded is None or time.monotonic() - self._last_used < self._idle_seconds * 0.99:
            return
        self._loaded = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        log.info("local_model_unloaded", model=self.model, idle_seconds=self._idle_seconds)

    async def aclose(self) -> None:
        if self._unload_timer is not None:
            self._unload_timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


class StopCutter:
    """Cuts streamed text where the model starts a new turn. Text that might be the start of a stop
    marker is held back until the next piece shows whether it is; leading blank lines are not a turn."""

    def __init__(self, markers: tuple[str, ...] = _STOP_MARKERS) -> None:
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


def _cut_at_stop(text: str) -> str:
    cutter = StopCutter()
    return cutter.feed(text) + cutter.finish()


def _streamer(tokenizer: Any, emit: Callable[[str | None], None]) -> Any:
    from transformers import TextStreamer

    class QueueStreamer(TextStreamer):
        """Hands each decoded piece to the event loop instead of printing it."""

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                emit(text)

    return QueueStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _stopping(stop: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenAsked(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWhenAsked()])
