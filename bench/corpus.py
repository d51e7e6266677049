"""The benchmarks' knowledge base: the first SciFact abstracts that make `BENCH_CHUNKS` chunks (5,000 by
default), ingested once by the service's own CLI into a store kept under `.bench-cache/` and reused by
later runs (the ingest sees an up-to-date store and embeds nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.server import ROOT

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "scifact"
CACHE = Path(os.environ.get("BENCH_CACHE", ROOT / ".bench-cache"))


@dataclass(frozen=True)
class Corpus:
    knowledge: Path
    store: Path
    chunks: int
    queries: list[str]  # the dataset's questions about these documents, in order


def dataset_dir() -> Path:
    return Path(os.environ.get("BENCH_DATASET", DEFAULT_DATASET))


def chunk_target() -> int:
    return int(os.environ.get("BENCH_CHUNKS", "5000"))


def corpus() -> Corpus:
    """The persisted store of `chunk_target()` chunks, built on the first call (minutes: it embeds)."""
    from rag.chunking import chunk_document
    from rag.embedder import resolve_model_path
    from rag.evaluation import Dataset, load_beir, write_knowledge_folder
    from rag.loading import load, scan
    from rag.settings import RagSettings
    from rag.tokens import tokens_for

    target = chunk_target()
    if not (dataset_dir() / "corpus.jsonl").is_file():
        raise SystemExit(
            f"no BEIR set at {dataset_dir()} (corpus.jsonl, queries.jsonl, qrels/test.tsv): set BENCH_DATASET"
        )
    home = CACHE / f"{dataset_dir().name}-{target}"
    knowledge, store = home / "knowledge", home / "db"
    full = load_beir(dataset_dir())
    settings = RagSettings(_env_file=None, knowledge_dir=knowledge, chroma_path=store)
    tokens = tokens_for(resolve_model_path(settings.embedding_model))
    if not knowledge.is_dir():
        staging = home / "staging"
        write_knowledge_folder(full, staging)
        chosen: dict[str, tuple[str, str]] = {}
        total = 0
        for (doc_id, doc), source in zip(full.corpus.items(), scan(staging), strict=True):
            if total >= target:
                break
            total += len(chunk_document(load(source), settings.chunk_size, settings.chunk_overlap, tokens))
            chosen[doc_id] = doc
        write_knowledge_folder(Dataset(chosen, {}, {}), knowledge)
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    documents = {path.name for path in knowledge.iterdir()}
    kept = {doc_id for number, doc_id in enumerate(full.corpus) if f"{number:07d}.md" in documents}
    queries = [text for qid, text in full.queries.items() if kept & set(full.qrels[qid])]
    _ingest(knowledge, store)
    chunks = sum(
        len(chunk_document(load(source), settings.chunk_size, settings.chunk_overlap, tokens))
        for source in scan(knowledge)
    )
    return Corpus(knowledge, store, chunks, queries)


def _ingest(knowledge: Path, store: Path) -> None:
    env = {**os.environ, "KNOWLEDGE_DIR": str(knowledge), "CHROMA_PATH": str(store), "HF_HUB_OFFLINE": "1"}
    sys.stderr.write(f"  bench store {store}: ingesting (embeds only on the first run)\n")
    subprocess.run([sys.executable, "-m", "rag", "ingest"], cwd=ROOT, env=env, check=True)
