"""Ingestion: the service's ingest of a corpus against a raw `SentenceTransformer.encode` of the very same
chunks at its best batch size (measured side by side in one process), then the cost of re-ingesting a large
corpus that did not change, or changed in one file.

    python -m bench.ingest [--dataset DIR] [--docs N] [--store DIR]

The corpus is a BEIR folder (default: BEIR SciFact under ../shared/data/scifact), written as a knowledge
folder the way `python -m rag eval` writes it. `--docs` limits the side-by-side part (embedding dominates it:
minutes per thousand abstracts on two cores); the re-ingest part uses the whole corpus, and embeds it once
unless `--store` names a store built from it before (`python -m rag eval DIR --store DIR` builds one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.server import ROOT

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "scifact"
BATCH_SIZES = (16, 32, 64, 128)
SAMPLE = 768  # chunks timed per batch size when looking for the best one


def _texts(knowledge: Path, settings: object) -> list[str]:
    from rag.chunking import chunk_document
    from rag.embedder import resolve_model_path
    from rag.loading import load, scan
    from rag.settings import RagSettings
    from rag.tokens import tokens_for

    assert isinstance(settings, RagSettings)
    tokens = tokens_for(resolve_model_path(settings.embedding_model))
    return [
        c.embedding_text()
        for source in scan(knowledge)
        for c in chunk_document(load(source), settings.chunk_size, settings.chunk_overlap, tokens)
    ]


def _best_batch_size(model: object, texts: list[str]) -> tuple[int, dict[int, float]]:
    sample = texts[:: max(1, len(texts) // SAMPLE)][:SAMPLE]
    timings: dict[int, float] = {}
    for size in BATCH_SIZES:
        started = time.perf_counter()
        model.encode(sample, batch_size=size, normalize_embeddings=True)  # type: ignore[attr-defined]
        timings[size] = time.perf_counter() - started
    return min(timings, key=timings.__getitem__), timings


def side_by_side(dataset: Path, docs: int) -> dict[str, float]:
    from rag.embedder import Embedder, resolve_model_path
    from rag.evaluation import load_beir, write_knowledge_folder
    from rag.ingestion import ensure_ingested
    from rag.settings import RagSettings
    from rag.store import KnowledgeStore

    full = load_beir(dataset)
    subset = replace(full, corpus=dict(list(full.corpus.items())[:docs]))
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        knowledge = Path(tmp) / "knowledge"
        write_knowledge_folder(subset, knowledge)
        base = RagSettings(_env_file=None, knowledge_dir=knowledge, chroma_path=Path(tmp) / "db")
        texts = _texts(knowledge, base)

        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(resolve_model_path(base.embedding_model)), device="cpu")
        model.encode(texts[:64], batch_size=32)  # warm-up
        best, timings = _best_batch_size(model, texts)
        for size, seconds in timings.items():
            sys.stderr.write(f"  batch {size:>3}: {seconds:.2f} s for {min(SAMPLE, len(texts))} chunks\n")

        def raw_encode() -> float:
            started = time.perf_counter()
            model.encode(texts, batch_size=best, normalize_embeddings=True)
            return time.perf_counter() - started

        settings = base.model_copy(update={"embedding_batch_size": best})
        store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)
        embedder = Embedder(settings.embedding_model, best)
        embedder.load()  # loading is not what is compared
        # Raw encode before and after the ingest: the machine's drift shows, and is averaged out.
        raw_before = raw_encode()
        ingest = ensure_ingested(store, embedder, settings).seconds
        raw_after = raw_encode()
        raw = (raw_before + raw_after) / 2
    return {
        "documents": float(len(subset.corpus)),
        "chunks": float(len(texts)),
        "best_batch_size": float(best),
        "raw_encode_s": raw,
        "raw_encode_spread": abs(raw_before - raw_after) / raw,
        "ingest_s": ingest,
        "ingest_over_raw_encode": ingest / raw,
        "raw_chunks_per_s": len(texts) / raw,
    }


def reingest(dataset: Path, store_dir: Path | None) -> dict[str, float]:
    from rag.embedder import Embedder
    from rag.evaluation import load_beir, write_knowledge_folder
    from rag.ingestion import ensure_ingested
    from rag.settings import RagSettings
    from rag.store import KnowledgeStore

    full = load_beir(dataset)
    with tempfile.TemporaryDirectory(prefix="bench-reingest-") as tmp:
        knowledge = Path(tmp) / "knowledge"
        write_knowledge_folder(full, knowledge)
        path = store_dir or Path(tmp) / "db"
        settings = RagSettings(_env_file=None, knowledge_dir=knowledge, chroma_path=path)
        store = KnowledgeStore.persistent(path, settings.collection_prefix)
        embedder = Embedder(settings.embedding_model)
        first = ensure_ingested(store, embedder, settings)
        if first.status != "up_to_date":
            sys.stderr.write(f"  built the store first: {first.chunks} chunks in {first.seconds:.0f} s\n")

        in_process = []
        for _ in range(3):
            fresh = KnowledgeStore.persistent(path, settings.collection_prefix)  # as a new process would
            report = ensure_ingested(fresh, Embedder(settings.embedding_model), settings)
            assert report.status == "up_to_date"
            in_process.append(report.seconds)

        env = {**os.environ, "KNOWLEDGE_DIR": str(knowledge), "CHROMA_PATH": str(path), "LOG_FORMAT": "json"}
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rag", "ingest"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        command = time.perf_counter() - started

        # One file edited: its chunk is embedded, every other vector is copied into the new build.
        edited = knowledge / "0000000.md"
        original = edited.read_text()
        edited.write_text(original + "\nAn added sentence.\n")
        one_changed = ensure_ingested(store, embedder, settings)
        edited.write_text(original)
        ensure_ingested(store, embedder, settings)  # the store is left as it was found
    return {
        "documents": float(len(full.corpus)),
        "chunks": float(store.count()),
        "noop_reingest_s": statistics.median(in_process),
        "noop_ingest_command_s": command,
        "one_file_changed_s": one_changed.seconds,
        "one_file_changed_embedded": float(one_changed.embedded),
    }


def run() -> dict[str, float]:
    dataset = Path(os.environ.get("BENCH_DATASET", DEFAULT_DATASET))
    if not (dataset / "corpus.jsonl").is_file():
        sys.stderr.write(f"ingest: skipped, no BEIR folder at {dataset} (set BENCH_DATASET)\n")
        return {}
    docs = int(os.environ.get("BENCH_INGEST_DOCS", "1000"))
    store = os.environ.get("BENCH_STORE")
    figures = {f"side_by_side.{k}": v for k, v in side_by_side(dataset, docs).items()}
    figures.update({f"reingest.{k}": v for k, v in reingest(dataset, Path(store) if store else None).items()})
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR folder")
    parser.add_argument("--docs", type=int, default=1000, help="documents in the side-by-side part")
    parser.add_argument("--store", type=Path, help="a store already built from the whole dataset")
    parser.add_argument("--skip-side-by-side", action="store_true")
    args = parser.parse_args(argv)
    os.environ["BENCH_DATASET"] = str(args.dataset)
    os.environ["BENCH_INGEST_DOCS"] = str(args.docs)
    if args.store:
        os.environ["BENCH_STORE"] = str(args.store)
    if args.skip_side_by_side:
        figures = {f"reingest.{k}": v for k, v in reingest(args.dataset, args.store).items()}
    else:
        figures = run()
    for name, value in figures.items():
        sys.stdout.write(f"ingest.{name} = {value:.3f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
