"""Sentence embeddings with ONNX Runtime: the vectors of sentence-transformers without importing torch.

Importing torch and sentence-transformers costs seconds and hundreds of MB, which a restarting service pays
before its first answer. The transformer is exported once to ONNX (with torch, `export_onnx`), checked against
sentence-transformers, and cached under a fingerprint of the model folder; later processes tokenize with
`tokenizers`, run the graph with ONNX Runtime and pool in numpy.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import json
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

if TYPE_CHECKING:
    import numpy.typing as npt
    from tokenizers import Tokenizer

    Vectors = npt.NDArray[np.float32]

log = structlog.get_logger(__name__)

ONNX_FILE = "model.onnx"
DEFAULT_MAX_LENGTH = 256
# Part of the fingerprint: a change to how the graph is exported must not reuse graphs made the old way.
EXPORT_FORMAT = 2
MIN_COSINE = 0.9999
# Inputs the exported graph may take, in the order the wrapper passes them.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# A temp file this old was left by a process that died mid-export; younger ones may still be written.
STALE_TEMP_SECONDS = 3600.0

# Its topic changes along the way, so cutting it at another length than sentence-transformers would shows.
_LONG_PROBE = " ".join(
    f"Paragraph {n}: {topic}"
    for n, topic in enumerate(
        [
            "our team builds websites, mobile apps and online shops, and supports them for years.",
            "the hourly rate is ninety euros; fixed-price projects are quoted after a workshop.",
            "support tickets get an answer within four hours on weekdays.",
            "the office in Lisbon opens at nine and closes at six, except on public holidays.",
            "clients own the code once the final invoice has been paid.",
        ]
        * 6
    )
)
# Short, long (well past 256 tokens, so truncation matters) and mixed lengths (so padding matters).
PROBE_TEXTS = (
    "hi",
    "",
    "What is your hourly rate for development?",
    "Café façade, naïve résumé: Ünïcödé and emoji 🚀 must tokenize the same way.",
    _LONG_PROBE,
    "How do I raise a support ticket, and how fast do you respond on weekends?",
)


# Background exports, by target, and their temp files. A daemon thread still inside torch or ONNX Runtime
# when the interpreter exits takes the process down with it ("terminate called without an active
# exception", SIGABRT), so at exit the exports are told to stop at their next step and waited for; the temp
# file of one that has not stopped is deleted, rather than left behind at 90 MB.
EXIT_WAIT_SECONDS = 60.0
_exiting = threading.Event()
_workers: dict[Path, threading.Thread] = {}
_in_flight: set[Path] = set()
_state_lock = threading.Lock()


@atexit.register
def _finish_exports() -> None:
    _exiting.set()
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    with _state_lock:
        workers = list(_workers.values())
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    with _state_lock:
        for temp in _in_flight:
            temp.unlink(missing_ok=True)


class UnsupportedModelError(ValueError):
    """The model folder needs something this encoder does not do (pooling other than mean, extra layers)."""


class OnnxLoadError(RuntimeError):
    """The exported file could not be opened by ONNX Runtime (corrupt, truncated, unexpected inputs)."""


class OnnxExportError(RuntimeError):
    """The model could not be exported, or the export did not reproduce sentence-transformers' vectors."""


class ExportInterrupted(OnnxExportError):
    """The process began to exit during the export."""


def _stop_if_exiting() -> None:
    if _exiting.is_set():
        raise ExportInterrupted("the process is exiting")


@dataclass(frozen=True)
class ModelInfo:
    """What the encoder needs to know about a sentence-transformers folder besides the graph."""

    max_length: int
    lowercase: bool


def _read_json(path: Path, kind: type = dict) -> Any:
    """A model folder's JSON file, which must hold a `kind` (an object by default)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnsupportedModelError(f"{path} could not be read: {exc}") from exc
    if not isinstance(data, kind):
        raise UnsupportedModelError(f"{path} is not a JSON {'object' if kind is dict else 'list'}")
    return data


def _pooling_modes(config: dict[str, Any]) -> set[str]:
    """The pooling modes of a Pooling module, in either the current or the legacy config style."""
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        return {mode}
    if isinstance(mode, list):
        return {str(m) for m in mode}
    legacy = {
        "pooling_mode_cls_token": "cls",
        "pooling_mode_max_tokens": "max",
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens": "weightedmean",
        "pooling_mode_lasttoken": "lasttoken",
    }
    active = {name for key, name in legacy.items() if config.get(key)}
    return active or {"mean"}  # sentence-transformers' default when no flag is set


def inspect_model(model_dir: Path) -> ModelInfo:
    """Check that `model_dir` is a transformer + mean pooling (+ normalize) model; raise otherwise."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        raise UnsupportedModelError(f"{model_dir} has no modules.json: its pooling is not declared")
    modules = _read_json(modules_file, list)
    kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedModelError(f"{model_dir}: modules {kinds} (only Transformer, Pooling[, Normalize])")
    if modules[0].get("path", "") != "":
        raise UnsupportedModelError(f"{model_dir}: the transformer lives in a subfolder")
    pooling = _read_json(model_dir / str(modules[1].get("path", "")) / "config.json")
    modes = _pooling_modes(pooling)
    if modes != {"mean"}:
        raise UnsupportedModelError(f"{model_dir}: pooling {sorted(modes)}; only mean pooling is supported")

    st_config_file = model_dir / "config_sentence_transformers.json"
    if st_config_file.is_file() and _read_json(st_config_file).get("default_prompt_name"):
        # sentence-transformers would prepend the prompt to every text; this encoder does not.
        raise UnsupportedModelError(f"{model_dir}: a default prompt is configured")
    if not (model_dir / "tokenizer.json").is_file():
        raise UnsupportedModelError(f"{model_dir} has no tokenizer.json")

    config = _read_json(model_dir / "config.json")
    bert_config_file = model_dir / "sentence_bert_config.json"
    bert_config = _read_json(bert_config_file) if bert_config_file.is_file() else {}
    max_length = bert_config.get("max_seq_length")
    if not isinstance(max_length, int):
        # As sentence-transformers does: the tokenizer's own limit when the folder names none.
        tokenizer_config_file = model_dir / "tokenizer_config.json"
        tokenizer_config = _read_json(tokenizer_config_file) if tokenizer_config_file.is_file() else {}
        limit = tokenizer_config.get("model_max_length")
        max_length = limit if isinstance(limit, int) and limit < 1_000_000 else DEFAULT_MAX_LENGTH
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        max_length = min(max_length, positions)
    return ModelInfo(max_length=max_length, lowercase=bool(bert_config.get("do_lower_case", False)))


def _weight_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def fingerprint(model_dir: Path) -> str:
    """A cheap identity of the model folder: a replaced or edited model must not reuse an old graph.

    Configs are hashed whole; the weights only by size and mtime, since hashing hundreds of MB would cost
    the start-up time this module exists to save.
    """
    digest = hashlib.sha256(f"format={EXPORT_FORMAT}\n".encode())
    for name in ("config.json", "tokenizer.json"):
        digest.update(name.encode() + b"\0" + (model_dir / name).read_bytes() + b"\0")
    weights = _weight_files(model_dir)
    if not weights:
        raise UnsupportedModelError(f"{model_dir} has no weights file")
    for path in weights:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def onnx_file(cache_dir: Path, model_dir: Path) -> Path:
    """Where the exported graph of this model folder (as it is now) lives under `cache_dir`."""
    # Packaged models sit in a folder called "model": the package's name says more.
    base = model_dir.parent.name if model_dir.name == "model" else model_dir.name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip(".-") or "model"
    return cache_dir / f"{slug}-{fingerprint(model_dir)[:16]}" / ONNX_FILE


def load_tokenizer(model_dir: Path, info: ModelInfo) -> Tokenizer:
    """The model's fast tokenizer, truncating and padding the way sentence-transformers does."""
    from tokenizers import Tokenizer, normalizers

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json may carry its own fixed padding and truncation (MiniLM's: 128); the model's limit wins.
    tokenizer.enable_truncation(max_length=info.max_length, strategy="longest_first", direction="right")
    padding = tokenizer.padding or {}
    pad_token = str(padding.get("pad_token") or "[PAD]")
    pad_id = padding.get("pad_id")
    if not isinstance(pad_id, int):
        pad_id = tokenizer.token_to_id(pad_token) or 0
    # The pad id never reaches the vectors (the attention mask hides it); only the batch shape matters.
    tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_token=pad_token)
    if info.lowercase:
        current = tokenizer.normalizer
        steps = [normalizers.Lowercase(), *([current] if current is not None else [])]
        tokenizer.normalizer = normalizers.Sequence(steps)
    return tokenizer


def _ort_errors() -> tuple[type[BaseException], ...]:
    # ONNX Runtime's own exceptions derive from Exception directly, not from RuntimeError.
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph")
    found = tuple(getattr(state, name) for name in names if hasattr(state, name))
    return (*found, OSError, RuntimeError, ValueError)


class OnnxEncoder:
    """Normalized mean-pooled embeddings of one model, run by ONNX Runtime on the CPU. Thread-safe."""

    def __init__(self, model_dir: Path, onnx_path: Path, max_length: int, threads: int = 0) -> None:
        import onnxruntime as ort

        info = inspect_model(model_dir)
        self.max_length = max_length
        self._tokenizer = load_tokenizer(model_dir, ModelInfo(max_length, info.lowercase))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Spinning workers would keep cores busy between queries, cores the web server needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except _ort_errors() as exc:
            raise OnnxLoadError(f"{onnx_path} could not be loaded: {exc}") from exc
        self._inputs = [i.name for i in self._session.get_inputs()]
        unknown = set(self._inputs) - set(MODEL_INPUTS)
        if unknown or "input_ids" not in self._inputs:
            raise OnnxLoadError(f"{onnx_path} takes inputs {self._inputs}, not a subset of {MODEL_INPUTS}")
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        self.onnx_path = onnx_path

    @classmethod
    def for_model(cls, model_dir: Path, onnx_path: Path, threads: int = 0) -> OnnxEncoder:
        """An encoder with the model folder's own sequence limit."""
        return cls(model_dir, onnx_path, inspect_model(model_dir).max_length, threads)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """One float32 row per text, L2-normalised, padded to the longest text of the batch."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feed = {name: np.asarray(columns[name], dtype=np.int64) for name in self._inputs}
        try:
            (hidden,) = self._session.run([self._output], feed)
        except _ort_errors() as exc:
            raise OnnxLoadError(f"{self.onnx_path} failed to run: {exc}") from exc
        mask = np.asarray(columns["attention_mask"], dtype=np.float32)[:, :, None]
        summed = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32, copy=False)
        return vectors


def _quiet_exporter() -> None:
    # The tracer warns about Python-side branches it records as constants; the verification step below is
    # what catches a graph that does not generalise, so the warnings are only noise in the service log.
    from torch.jit._trace import TracerWarning

    warnings.filterwarnings("ignore", category=TracerWarning)
    warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
    warnings.filterwarnings("ignore", message=r".*Exporting aten::index operator.*")


def _trace(model_dir: Path, info: ModelInfo, path: Path) -> None:
    import torch
    from transformers import AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_exporter()
    try:
        # Plain attention traces to fewer ops than SDPA's: ~15% more documents/s under ONNX Runtime.
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
    except ValueError:
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    model.eval()
    _stop_if_exiting()
    accepted = set(inspect.signature(model.forward).parameters)
    names = [name for name in MODEL_INPUTS if name in accepted]

    class LastHiddenState(torch.nn.Module):
        # Keyword arguments: transformers 5 puts `use_cache` and others between the positional ones.
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

    # Traced with a padded row, so the graph keeps the attention mask rather than a no-padding shortcut.
    tokenizer = load_tokenizer(model_dir, info)
    sample = tokenizer.encode_batch(["hello world", "a somewhat longer sentence to trace the graph with"])
    columns = {
        "input_ids": [e.ids for e in sample],
        "attention_mask": [e.attention_mask for e in sample],
        "token_type_ids": [e.type_ids for e in sample],
    }
    args = tuple(torch.tensor(columns[name], dtype=torch.long) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(
            LastHiddenState(model),
            args,
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _sentence_transformers_reference(model_dir: Path) -> Callable[[list[str]], Vectors]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)

    def encode(texts: list[str]) -> Vectors:
        vectors: Vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return vectors

    return encode


def _compare(onnx_file: Path, model_dir: Path, info: ModelInfo, reference: Vectors) -> tuple[float, float]:
    """The worst cosine and largest absolute difference against `reference`, batched and one by one."""
    encoder = OnnxEncoder(model_dir, onnx_file, info.max_length)
    texts = list(PROBE_TEXTS)
    batched = encoder.encode(texts)
    single = np.vstack([encoder.encode([text]) for text in texts])
    cosines = np.concatenate([(batched * reference).sum(axis=1), (single * reference).sum(axis=1)])
    diff = max(float(np.abs(batched - reference).max()), float(np.abs(single - reference).max()))
    return float(cosines.min()), diff


def remove_stale_temps(folder: Path) -> None:
    """Delete temp files that a process killed mid-export left in `folder`."""
    now = time.time()
    for leftover in folder.glob(".model-*.onnx.tmp"):
        try:
            if now - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
                leftover.unlink()
        except OSError:
            continue  # another process removed or replaced it meanwhile


def export_onnx(
    model_dir: Path, target: Path, reference: Callable[[list[str]], Vectors] | None = None
) -> Path:
    """Export the model's transformer to `target`, verified against sentence-transformers.

    `reference` embeds texts with sentence-transformers (normalized); by default a model is loaded for it,
    a caller that already has one passes it to spare the memory. The file appears at `target` only once it
    has passed the check, so a reader never opens a half-written or wrong graph.
    """
    info = inspect_model(model_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target.parent)
        handle, temp_name = tempfile.mkstemp(prefix=".model-", suffix=".onnx.tmp", dir=target.parent)
        os.close(handle)
    except OSError as exc:  # a read-only cache volume, say: torch it is
        log.warning("onnx_export_failed", model=str(model_dir), error=f"{type(exc).__name__}: {exc}")
        raise OnnxExportError(f"cannot write the ONNX export to {target.parent}: {exc}") from exc
    temp = Path(temp_name)
    with _state_lock:
        _in_flight.add(temp)
    try:
        return _export_checked(model_dir, info, temp, target, reference)
    finally:
        with _state_lock:
            _in_flight.discard(temp)


def _export_checked(
    model_dir: Path,
    info: ModelInfo,
    temp: Path,
    target: Path,
    reference: Callable[[list[str]], Vectors] | None,
) -> Path:
    started = time.perf_counter()
    log.info("onnx_export_started", model=str(model_dir), target=str(target))
    try:
        _trace(model_dir, info, temp)
        _stop_if_exiting()
        expected = (reference or _sentence_transformers_reference(model_dir))(list(PROBE_TEXTS))
        _stop_if_exiting()
        worst, diff = _compare(temp, model_dir, info, np.asarray(expected, dtype=np.float32))
    except ExportInterrupted:
        temp.unlink(missing_ok=True)
        log.info("onnx_export_interrupted", model=str(model_dir))
        raise
    except Exception as exc:  # torch's exporter raises many types; every one means "no ONNX this time"
        temp.unlink(missing_ok=True)
        log.warning("onnx_export_failed", model=str(model_dir), error=f"{type(exc).__name__}: {exc}")
        raise OnnxExportError(f"exporting {model_dir} to ONNX failed: {exc}") from exc
    if worst < MIN_COSINE:
        temp.unlink(missing_ok=True)
        log.warning("onnx_export_rejected", model=str(model_dir), min_cosine=worst, max_abs_diff=diff)
        raise OnnxExportError(f"the ONNX export of {model_dir} differs: cosine {worst:.6f} < {MIN_COSINE}")
    try:
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the graph from a service running as another user
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        log.warning("onnx_export_failed", model=str(model_dir), error=f"{type(exc).__name__}: {exc}")
        raise OnnxExportError(f"cannot move the ONNX export to {target}: {exc}") from exc
    log.info(
        "onnx_export_ready",
        model=str(model_dir),
        target=str(target),
        min_cosine=round(worst, 7),
        max_abs_diff=diff,
        seconds=round(time.perf_counter() - started, 2),
    )
    return target


def export_in_background(
    model_dir: Path, target: Path, reference: Callable[[list[str]], Vectors] | None = None
) -> threading.Thread:
    """`export_onnx` in a daemon thread, one per target in this process; failures are logged, not raised."""
    with _state_lock:
        running = _workers.get(target)
        if running is not None and running.is_alive():
            return running
        worker = threading.Thread(
            target=_export_logged, args=(model_dir, target, reference), name="onnx-export", daemon=True
        )
        _workers[target] = worker
        # Started under the lock so that the exit hook never sees a registered thread that cannot be joined.
        worker.start()
    return worker


def _export_logged(model_dir: Path, target: Path, reference: Callable[[list[str]], Vectors] | None) -> None:
    try:
        if not _exiting.is_set():
            export_onnx(model_dir, target, reference)
    except (OnnxExportError, UnsupportedModelError):
        pass  # export_onnx logged why; the caller keeps torch, and the next start tries again
    finally:
        with _state_lock:
            if _workers.get(target) is threading.current_thread():
                del _workers[target]
