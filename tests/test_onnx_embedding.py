"""The ONNX Runtime embedder against sentence-transformers, with the real bundled MiniLM and real exports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.embedder import Backend, Embedder, resolve_model_path
from rag.errors import EmbeddingError
from rag.onnx_encoder import (
    PROBE_TEXTS,
    OnnxEncoder,
    OnnxExportError,
    UnsupportedModelError,
    export_onnx,
    onnx_file,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL = "all-MiniLM-L6-v2"
EXPORT_WAIT = 300.0

# Each sentence changes the topic, so a text cut at 128 tokens (tokenizer.json's own limit) embeds
# differently from one cut at 256 (the model's): only the right truncation matches sentence-transformers.
LONG = " ".join(
    [
        "Our agency builds websites and online shops for small companies across Europe.",
        "The hourly rate for development is ninety euros, design work is billed per project.",
        "Support tickets are answered within four hours on weekdays and one day on weekends.",
        "The head of design joined in 2015 after ten years at a large advertising firm.",
        "Clients own all the code once the final invoice has been paid in full.",
    ]
    * 4
    + ["Finally, the office in Lisbon is open from nine to six, closed on public holidays."] * 8
)
TEXTS = [
    "hi",
    "What is your hourly rate for development?",
    LONG,
    "",
    "Café, naïve résumé — ünïcödé 🚀",
    "How do I raise a support ticket and how fast do you respond?",
    *[f"question number {n} about pricing, packages and {'very ' * n}long waits" for n in range(12)],
]


def _cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    left, right = np.asarray(a), np.asarray(b)
    cosines: np.ndarray = (left * right).sum(axis=1) / (
        np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    )
    return cosines


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return resolve_model_path(MODEL)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The reference: sentence-transformers itself (the suite's shared embedder runs on ONNX)."""
    reference = Embedder(MODEL, backend="torch")
    reference.load()
    assert reference.backend_in_use == "torch"
    return reference


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A cache folder holding a verified export (exporting takes seconds: once for the module)."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    export_onnx(model_dir, onnx_file(cache, model_dir))
    return cache


def _temp_files(folder: Path) -> list[Path]:
    return list(folder.rglob("*.tmp"))


def test_the_long_text_is_longer_than_the_model_window(model_dir: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    assert len(tokenizer.encode(LONG).ids) > 300  # else the truncation checks below prove nothing


def test_onnx_vectors_match_sentence_transformers(export_cache: Path, embedder: Embedder) -> None:
    onnx = Embedder(MODEL, batch_size=16, backend="onnx", cache_dir=export_cache)
    batched = onnx.embed(TEXTS)  # one padded batch of 16, then the rest
    alone = [onnx.embed_query(text) for text in TEXTS]
    expected = [embedder.embed_query(text) for text in TEXTS]

    assert onnx.backend_in_use == "onnx" and onnx.state == "ready"
    assert onnx.calls == 2 * len(TEXTS)
    assert _cosines(batched, expected).min() >= 0.9999
    assert _cosines(alone, expected).min() >= 0.9999
    assert np.abs(np.asarray(batched) - np.asarray(expected)).max() < 1e-4
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in batched)
    assert len(batched[0]) == 384


def test_auto_without_an_export_runs_torch_and_leaves_a_verified_export(
    tmp_path: Path, model_dir: Path, embedder: Embedder
) -> None:
    cache = tmp_path / "cache"
    auto = Embedder(MODEL, cache_dir=cache)
    vector = auto.embed_query("What services do you offer?")

    assert auto.backend_in_use == "torch"
    during_export = auto.embed(TEXTS)  # the export runs beside it: answers must not change meanwhile
    assert auto.wait_for_export(EXPORT_WAIT)
    target = onnx_file(cache, model_dir)
    assert target.is_file() and not _temp_files(cache)
    assert auto.backend_in_use == "torch"  # this process keeps what it loaded
    assert _cosines([vector], [embedder.embed_query("What services do you offer?")])[0] >= 0.9999
    expected = embedder.embed(TEXTS)
    assert _cosines(during_export, expected).min() >= 0.9999
    exported = OnnxEncoder.for_model(model_dir, target).encode(TEXTS).tolist()
    assert _cosines(exported, expected).min() >= 0.9999
    assert target.stat().st_mode & 0o044 == 0o044  # readable by a service running as another user


def test_a_new_process_with_the_export_does_not_import_torch(export_cache: Path, embedder: Embedder) -> None:
    question = "Who owns the code when the project is finished?"
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from rag.embedder import Embedder\n"
        f"e = Embedder({MODEL!r}, cache_dir=Path(sys.argv[1]))\n"
        f"v = e.embed_query({question!r})\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "print(json.dumps({'backend': e.backend_in_use, 'heavy': heavy, 'vector': v}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(export_cache)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["backend"] == "onnx"
    assert result["heavy"] == []
    assert _cosines([result["vector"]], [embedder.embed_query(question)])[0] >= 0.9999


def test_a_corrupt_export_falls_back_to_torch_and_is_replaced(
    tmp_path: Path, model_dir: Path, embedder: Embedder
) -> None:
    cache = tmp_path / "cache"
    target = onnx_file(cache, model_dir)
    target.parent.mkdir(parents=True)
    garbage = b"not an onnx graph" * 1000
    target.write_bytes(garbage)

    auto = Embedder(MODEL, cache_dir=cache)
    vectors = auto.embed(TEXTS)

    assert auto.backend_in_use == "torch"
    assert _cosines(vectors, embedder.embed(TEXTS)).min() >= 0.9999
    assert auto.wait_for_export(EXPORT_WAIT)
    assert target.read_bytes() != garbage and not _temp_files(cache)
    again = Embedder(MODEL, cache_dir=cache)
    assert _cosines(again.embed(TEXTS), vectors).min() >= 0.9999
    assert again.backend_in_use == "onnx"


def test_backend_onnx_replaces_a_corrupt_export_at_once(
    tmp_path: Path, model_dir: Path, embedder: Embedder
) -> None:
    cache = tmp_path / "cache"
    target = onnx_file(cache, model_dir)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x08\x07truncated")

    onnx = Embedder(MODEL, backend="onnx", cache_dir=cache)
    vector = onnx.embed_query("What are your office opening hours?")

    assert onnx.backend_in_use == "onnx"
    assert _cosines([vector], [embedder.embed_query("What are your office opening hours?")])[0] >= 0.9999


def test_backend_torch_never_exports(tmp_path: Path) -> None:
    cases: list[tuple[Backend, Path | None]] = [("torch", tmp_path / "torch-cache"), ("auto", None)]
    for backend, cache in cases:
        torch_only = Embedder(MODEL, backend=backend, cache_dir=cache)
        torch_only.embed_query("hello")

        assert torch_only.backend_in_use == "torch"
        assert torch_only.wait_for_export(0)  # none was started
    assert not (tmp_path / "torch-cache").exists()
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_disagrees_with_its_reference_is_discarded(tmp_path: Path, model_dir: Path) -> None:
    target = onnx_file(tmp_path / "cache", model_dir)
    wrong = np.roll(np.eye(len(PROBE_TEXTS), 384, dtype=np.float32), 1, axis=1)

    with pytest.raises(OnnxExportError, match="differs"):
        export_onnx(model_dir, target, reference=lambda texts: wrong)

    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_unsupported_pooling_stays_on_torch(tmp_path: Path, model_dir: Path, embedder: Embedder) -> None:
    cls_model = tmp_path / "minilm-cls"
    shutil.copytree(model_dir, cls_model)
    pooling_file = cls_model / "1_Pooling" / "config.json"
    pooling = json.loads(pooling_file.read_text())
    pooling.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    pooling_file.write_text(json.dumps(pooling))
    cache = tmp_path / "cache"

    auto = Embedder(str(cls_model), cache_dir=cache)
    vector = auto.embed_query("What services do you offer?")
    assert auto.backend_in_use == "torch"
    assert auto.wait_for_export(0)
    assert not cache.exists()
    # Really the CLS model: its vector is not the mean-pooled one.
    assert _cosines([vector], [embedder.embed_query("What services do you offer?")])[0] < 0.99

    with pytest.raises(UnsupportedModelError):
        OnnxEncoder.for_model(cls_model, onnx_file(tmp_path, model_dir))
    onnx = Embedder(str(cls_model), backend="onnx", cache_dir=cache)
    with pytest.raises(EmbeddingError, match="cannot run on ONNX"):
        onnx.load()
    assert onnx.state == "not loaded" and not cache.exists()


def test_an_edited_model_gets_a_new_export_path(tmp_path: Path, model_dir: Path) -> None:
    copy = tmp_path / "minilm"
    shutil.copytree(model_dir, copy)
    first = onnx_file(tmp_path, copy)
    assert onnx_file(tmp_path, copy) == first  # stable while nothing changes

    weights = copy / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = onnx_file(tmp_path, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    third = onnx_file(tmp_path, copy)

    assert len({first, second, third}) == 3
    assert first.parent.name.startswith("minilm-") and first.name == "model.onnx"


def test_an_unwritable_cache_keeps_torch_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    crashes: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)

    auto = Embedder(MODEL, cache_dir=blocker)
    auto.embed_query("hello")

    assert auto.wait_for_export(EXPORT_WAIT)
    assert auto.backend_in_use == "torch"
    assert crashes == [] and blocker.is_file()


def test_a_process_that_exits_mid_export_exits_cleanly_and_leaves_no_temp_file(
    tmp_path: Path, model_dir: Path
) -> None:
    cache = tmp_path / "cache"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from rag.embedder import Embedder\n"
        f"e = Embedder({MODEL!r}, cache_dir=Path(sys.argv[1]))\n"
        "e.embed_query('hello')\n"
        "assert e.backend_in_use == 'torch' and not e.wait_for_export(0)\n"
        "print('exiting at', time.monotonic())\n"  # and exits while the export runs
    )
    # Without waiting for the export thread, exit aborted in torch's thread pool (SIGABRT) in about half
    # the runs: a few runs make that regression very likely to show.
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", script, str(cache)], cwd=ROOT, capture_output=True, text=True, timeout=180
        )
        exited = time.monotonic()

        assert done.returncode == 0, done.stderr[-2000:]
        (exiting_at,) = [
            line.split()[-1] for line in done.stdout.splitlines() if line.startswith("exiting at")
        ]
        assert exited - float(exiting_at) < 30  # it stops at its next step
        assert cache.is_dir() and not _temp_files(cache)
    target = onnx_file(cache, model_dir)
    assert not target.exists() or OnnxEncoder.for_model(model_dir, target).encode(["hi"]).shape == (1, 384)


def test_a_repeated_question_reuses_its_vector(export_cache: Path) -> None:
    onnx = Embedder(MODEL, backend="onnx", cache_dir=export_cache)
    first = onnx.embed_query("Do you ship abroad?")
    again = onnx.embed_query("Do you ship abroad?")
    other = onnx.embed_query("Do you ship to France?")

    assert again == first and other != first
    assert onnx.calls == 2  # the repeat cost no model call
