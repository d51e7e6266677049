"""Lexical (BM25) and hybrid retrieval over a real store, and the case hybrid is for."""

from __future__ import annotations

from pathlib import Path

from rag.embedder import Embedder
from rag.evaluation import Dataset, document_ids, evaluate, write_knowledge_folder
from rag.ingestion import ensure_ingested
from rag.retriever import Retriever, RetrieverMode
from rag.store import KnowledgeStore
from tests.conftest import AppFactory, rag_settings

CORPUS = {
    "model": ("Compatibility", "Model ZQX7 is on the list we checked this spring."),
    "servers": ("Servers", "Our servers work with most network equipment used for websites."),
    "phone": ("Support", "Our staff pick up the telephone from half past eight in the morning until six."),
    "office": ("Office", "The office is in Bristol, near the harbour, on the second floor."),
    "backups": ("Backups", "Websites are backed up every night and kept for thirty days."),
}
QUERIES = {
    # The answer shares only a rare code with the question; another passage shares its meaning.
    "exact": ("Is the ZQX7 router supported for hosting?", {"model": 1}),
    # No word in common with the answer: only the embedding sees that it is the same thing.
    "paraphrase": ("When can I ring your helpline?", {"phone": 1}),
}


def scores(tmp_path: Path, embedder: Embedder) -> dict[RetrieverMode, float]:
    dataset = Dataset(
        CORPUS, {q: t for q, (t, _) in QUERIES.items()}, {q: j for q, (_, j) in QUERIES.items()}
    )
    write_knowledge_folder(dataset, tmp_path / "kb")
    settings = rag_settings(knowledge_dir=tmp_path / "kb", chroma_path=tmp_path / "db")
    store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)
    ensure_ingested(store, embedder, settings)
    results: dict[RetrieverMode, float] = {}
    for mode in ("dense", "lexical", "hybrid"):
        retriever = Retriever(store, embedder, 3, mode=mode, lexical_dir=tmp_path / "db" / "lexical")
        results[mode] = evaluate(dataset, retriever.retrieve, document_ids(dataset)).mrr_at_10
    return results


def test_each_mode_finds_what_it_is_good_at(tmp_path: Path, embedder: Embedder) -> None:
    results = scores(tmp_path, embedder)
    # The paraphrase shares no word with its answer: BM25 cannot find it, the embedding can.
    assert results["dense"] > results["lexical"], results
    assert results["hybrid"] >= results["lexical"], results


def test_lexical_index_is_built_once_per_build_and_reloaded(tmp_path: Path, embedder: Embedder) -> None:
    scores(tmp_path, embedder)
    folders = list((tmp_path / "db" / "lexical").iterdir())
    assert len(folders) == 1  # one index, named after the build, kept for the next start
    stamp = (folders[0] / "chunk_ids.json").stat().st_mtime_ns

    store = KnowledgeStore.persistent(tmp_path / "db", "knowledge")
    retriever = Retriever(store, embedder, 3, mode="lexical", lexical_dir=tmp_path / "db" / "lexical")
    retriever.prepare()
    assert (folders[0] / "chunk_ids.json").stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert retriever.retrieve("ZQX7")[0].text.startswith("Model ZQX7")


def test_the_service_answers_with_hybrid_retrieval(make_client: AppFactory) -> None:
    client = make_client(rag={"retriever": "hybrid"})
    body = client.post("/chat", json={"message": "How much does the Growth website package cost?"}).json()
    assert body["sources"][0]["source"] == "pricing.md" and "12,500" in body["response"]
