"""The local tier on llama.cpp (`llama-cpp-python`, in process) for GGUF model files.

The chat template comes from the GGUF file itself (llama-cpp-python applies `tokenizer.chat_template` when
no chat format is forced); a GGUF without one (a base model) gets the plain-text prompt. `LocalGenerator` does
the rest: the single generation slot, the memory guard, idle unload, the stop and cut rules. Everything here
runs on its generation thread.

`read_gguf` reads a GGUF file's header without llama.cpp: the memory estimate of a first load and the checks
of `download-models` need it where llama-cpp-python is not installed.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from agent.generators.base import GenerationParams
from agent.generators.local import STOP_MARKERS, DecodeRun
from agent.prompting import CompactPrompt, ContextBudget, Prompt, compact

GGUF_MAGIC = b"GGUF"
# Value types of GGUF metadata: struct format of the fixed-size ones.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# llama.cpp's working buffers beyond weights and KV cache (compute graph, logits), per token of the window,
# plus a fixed part; fitted to the loads measured on SmolLM2-135M and then only used until a load is measured.
_COMPUTE_FIXED = 16 * 2**20
_TEMPLATE_TOKENS = 8  # what a chat template adds around each message (`<|im_start|>system\n`...), at most

Scalar = int | float | bool | str


@dataclass(frozen=True, slots=True)
class GgufInfo:
    """What the memory estimate and the checks need from a GGUF file's header."""

    path: Path
    version: int
    metadata: dict[str, Scalar]  # scalar values; arrays are listed by length in `array_lengths`
    array_lengths: dict[str, int]
    parameters: int  # weights, summed over the tensors

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    def _number(self, key: str) -> int | None:
        value = self.metadata.get(f"{self.architecture}.{key}")
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def context_length(self) -> int | None:
        """The window the model was trained for."""
        return self._number("context_length")

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """Keys and values in 16-bit floats for `n_ctx` tokens, every layer."""
        layers = self._number("block_count") or 0
        width = self._number("embedding_length") or 0
        heads = self._number("attention.head_count") or 1
        kv_heads = self._number("attention.head_count_kv") or heads
        key = self._number("attention.key_length") or width // heads
        value = self._number("attention.value_length") or width // heads
        return n_ctx * layers * kv_heads * (key + value) * 2

    def load_bytes(self, n_ctx: int) -> int:
        """A first load's memory, before any load was measured: the weights (read in whole from the file),
        the KV cache for the window, and llama.cpp's working buffers (logits, the compute graph)."""
        vocabulary = self.array_lengths.get("tokenizer.ggml.tokens", 0)
        working = _COMPUTE_FIXED + vocabulary * 4 * 64 + n_ctx * 16 * 1024
        return self.path.stat().st_size + self.kv_cache_bytes(n_ctx) + working


def read_gguf(path: Path) -> GgufInfo:
    """The header of a GGUF file (metadata and tensor shapes); ValueError when it is not a readable one."""
    with path.open("rb") as file:
        if file.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path.name} is not a GGUF file (no GGUF magic number)")
        (version,) = _unpack(file, "<I")
        if version not in (2, 3):
            raise ValueError(f"{path.name}: GGUF version {version} is not supported")
        tensors, entries = _unpack(file, "<QQ")
        if tensors > 1_000_000 or entries > 1_000_000:
            raise ValueError(f"{path.name}: implausible GGUF header ({tensors} tensors, {entries} entries)")
        metadata: dict[str, Scalar] = {}
        lengths: dict[str, int] = {}
        for _ in range(entries):
            key = _string(file)
            (kind,) = _unpack(file, "<I")
            if kind == _ARRAY:
                lengths[key] = _skip_array(file)
            else:
                metadata[key] = _value(file, kind)
        parameters = 0
        for _ in range(tensors):
            _string(file)
            (dims,) = _unpack(file, "<I")
            if dims > 8:
                raise ValueError(f"{path.name}: a tensor with {dims} dimensions")
            shape = _unpack(file, f"<{dims}Q")
            _unpack(file, "<IQ")  # type and offset
            parameters += math.prod(shape)
    return GgufInfo(path, version, metadata, lengths, parameters)


def _unpack(file: BinaryIO, fmt: str) -> tuple[Any, ...]:
    size = struct.calcsize(fmt)
    data = file.read(size)
    if len(data) != size:
        raise ValueError("the GGUF header ends early (a truncated file?)")
    return struct.unpack(fmt, data)


def _string(file: BinaryIO) -> str:
    (length,) = _unpack(file, "<Q")
    if length > 64 * 2**20:
        raise ValueError("implausible string length in the GGUF header")
    data = file.read(length)
    if len(data) != length:
        raise ValueError("the GGUF header ends early (a truncated file?)")
    return data.decode("utf-8", errors="replace")


def _value(file: BinaryIO, kind: int) -> Scalar:
    if kind == _STRING:
        return _string(file)
    if kind not in _SCALARS:
        raise ValueError(f"unknown GGUF value type {kind}")
    value: Scalar = _unpack(file, "<" + _SCALARS[kind])[0]
    return value


def _skip_array(file: BinaryIO) -> int:
    """Past an array (tokens, merges, scores), keeping only its length: its items are not needed here."""
    kind, count = _unpack(file, "<IQ")
    if kind in _SCALARS:
        file.seek(count * struct.calcsize(_SCALARS[kind]), os.SEEK_CUR)
    elif kind == _STRING:
        for _ in range(count):
            (length,) = _unpack(file, "<Q")
            file.seek(length, os.SEEK_CUR)
    else:  # nested arrays do not occur in the metadata llama.cpp writes
        raise ValueError(f"unsupported GGUF array of type {kind}")
    return int(count)


def default_threads() -> int:
    """Half the cores this process may use (its CPU affinity, and its container's CPU quota), at least one.
    llama.cpp's threads wait for each other by spinning: with as many threads as cores, any other work on the
    machine (the service itself, a neighbour) stalls every step, measured 2-3x slower on 2 busy cores than one
    thread. llama-cpp-python's own default halves the host's cores, whatever a container's quota says."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores // 2)


class LlamaCppBackend:
    name = "llama.cpp"

    def __init__(
        self,
        path: Path,
        params: GenerationParams,
        context: ContextBudget,
        *,
        context_window: int = 2048,
        threads: int = 0,
    ) -> None:
        self._path = path
        self._params = params
        self._context = context
        self._window = context_window
        self._threads = threads or default_threads()
        self._llm: Any = None
        self._chat = False

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def prepare(self) -> None:
        import llama_cpp  # noqa: F401  (its import is not the model's memory)

    def _n_ctx(self, info: GgufInfo) -> int:
        trained = info.context_length
        return min(self._window, trained) if trained else self._window

    def estimate_bytes(self) -> int | None:
        info = read_gguf(self._path)
        return info.load_bytes(self._n_ctx(info))

    def load(self) -> None:
        from llama_cpp import Llama

        info = read_gguf(self._path)  # a file llama.cpp cannot read fails here, with a clear reason
        self._llm = Llama(
            model_path=str(self._path),
            n_ctx=self._n_ctx(info),
            n_threads=self._threads,
            n_threads_batch=self._threads,
            verbose=False,
        )
        # Without a template llama-cpp-python falls back to a generic chat format that a base model echoes.
        self._chat = bool(self._llm.metadata.get("tokenizer.chat_template"))

    def unload(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()  # frees the weights and the context now, not whenever the collector runs

    def decode(self, prompt: Prompt, run: DecodeRun, emit: Callable[[str], None]) -> None:
        llm = self._llm
        assert llm is not None, "load() first"
        n_ctx = int(llm.n_ctx())
        max_new = min(run.max_tokens, n_ctx // 2)
        shown = self._fit(llm, prompt, n_ctx - max_new)
        first: list[int] = []
        end_of_turn = int(llm.token_eos())

        def keep_going(input_ids: Any, scores: Any) -> Any:
            """Called before each token is sampled (create_chat_completion has no stopping criteria): when
            asked to stop, or when time is up, the end-of-turn token is the only one left to pick, and
            decoding ends at once, cleanly. The tokens sampled so far are read from the context's length (an
            end-of-turn token, sampled last, is not part of the answer: it is not counted)."""
            if not first:
                first.append(len(input_ids))
            run.tokens = len(input_ids) - first[0]
            if not run.check():
                scores.fill(-math.inf)
                scores[end_of_turn] = 0.0
            return scores

        params = self._params
        options: dict[str, Any] = {
            "max_tokens": max_new,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "repeat_penalty": params.repetition_penalty,
            "stop": list(STOP_MARKERS),
            "stream": True,
            "logits_processor": [keep_going],
        }
        if self._chat:
            chunks = llm.create_chat_completion(messages=shown.messages(), **options)
        else:
            chunks = llm.create_completion(prompt=shown.plain_text(), **options)
        reason: str | None = None
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content") if self._chat else choice.get("text")
                if piece:
                    emit(piece)
                reason = choice.get("finish_reason") or reason
                if run.stop.is_set():
                    break
        finally:
            chunks.close()  # on an early exit too: ends decoding now
        if reason == "length":
            run.tokens = max_new  # the last token was sampled after the last call above
        if run.finish is None:  # not stopped by us: by the model (end of turn, stop text) or the limit
            run.finish = "length" if reason == "length" else "stop"

    def _fit(self, llm: Any, prompt: Prompt, limit: int) -> CompactPrompt:
        """The compact prompt, with passages dropped until it fits `limit` tokens of the window."""
        budget = self._context
        while True:
            shown = compact(prompt, budget)
            turns = shown.messages()
            text = "\n".join(m["content"] for m in turns) if self._chat else shown.plain_text()
            size = len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))
            size += _TEMPLATE_TOKENS * len(turns) if self._chat else 0
            if size <= limit or budget.passages == 0:
                return shown
            budget = budget.smaller()
