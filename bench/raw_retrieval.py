"""The floor of the retrieval benchmark: the embedding library's own encode of the query, then Chroma's
`collection.query` for the top k, in a plain loop over the benchmark store. Prints one JSON object of
per-query seconds.

    python -m bench.raw_retrieval STORE QUERIES_JSON --backend sentence-transformers|onnx [--k 4] [--pause S]

`--pause` idles between queries as a service idles between visitors (threads asleep, caches cooled): it shows
how much of a service's extra time is the machine waking up rather than the service's own work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WARM_UP = 10


def _encoder(backend: str) -> Callable[[str], Any]:
    """query -> a (1, dimensions) array, by the backend's own call."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.embedder import resolve_model_path
    from rag.settings import RagSettings

    settings = RagSettings(_env_file=None)
    path = resolve_model_path(settings.embedding_model)
    if backend == "onnx":
        from rag.onnx_encoder import OnnxEncoder, onnx_file

        encoder = OnnxEncoder.for_model(path, onnx_file(settings.embedding_cache_dir, path), 0)
        return lambda text: encoder.encode([text])
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return lambda text: model.encode([text], normalize_embeddings=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("queries", type=Path)
    parser.add_argument("--backend", default="sentence-transformers")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args(argv)

    import chromadb
    from chromadb.config import Settings

    from rag.settings import RagSettings
    from rag.store import open_store

    # The store only finds the served build; the loop calls Chroma's own API on its collection (the floor
    # the service is measured against, so not through the store).
    build = open_store(RagSettings(_env_file=None, chroma_path=args.store)).active_build
    assert build is not None, "the benchmark store has no build"
    client = chromadb.PersistentClient(path=str(args.store), settings=Settings(anonymized_telemetry=False))
    collection = client.get_collection(build.name)
    encode = _encoder(args.backend)
    queries: list[str] = json.loads(args.queries.read_text())
    for query in queries[-WARM_UP:]:
        collection.query(query_embeddings=encode(query), n_results=args.k)
    seconds = []
    for query in queries[:-WARM_UP]:
        time.sleep(args.pause)
        started = time.perf_counter()
        collection.query(query_embeddings=encode(query), n_results=args.k)
        seconds.append(time.perf_counter() - started)
    sys.stdout.write(json.dumps({"seconds": seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
