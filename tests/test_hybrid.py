"""Lexical (BM25) and hybrid retrieval over a real store, and the case hybrid is for."""

from __future__ import annotations

import statistics
from pathlib import Path

from rag.embedder import Embedder
from rag.evaluation import Dataset, document_ids, mrr_at, rank_documents, write_knowledge_folder
from rag.ingestion import ensure_ingested
from rag.retriever import Retriever, RetrieverMode
from rag.store import KnowledgeStore
from tests.conftest import AppFactory, rag_settings

CORPUS = {
    # A product line of near-duplicates: only the model number tells them apart, and the embedding
    # hardly sees numbers. The right answer has every word of its question, but is worded least like it.
    "kx4471": ("KX-4471", "IPv6 for hosting on the KX-4471 router? It has support since the 2.0 firmware."),
    "kx4417": ("KX-4417", "Does the KX-4417 router support IPv6 for hosting? The KX-4417 router does not."),
    "kx7441": ("KX-7441", "Does the KX-7441 router support IPv6 for hosting? Yes, the KX-7441 router does."),
    "kx1447": ("KX-1447", "Does the KX-1447 router support IPv6 for hosting? Not the KX-1447 router."),
    "vt2290": ("VT-2290", "A VPN tunnel on the VT-2290 gateway? You can run one since the 3.1 update."),
    "vt2920": ("VT-2920", "Can the VT-2920 gateway run a VPN tunnel? The VT-2920 gateway cannot."),
    "vt9220": ("VT-9220", "Can the VT-9220 gateway run a VPN tunnel? The VT-9220 gateway can."),
    # Plain-language passages that questions reach only by meaning.
    "phone": ("Support", "Our staff pick up the telephone from half past eight in the morning until six."),
    "refund": ("Money back", "If you cancel within fourteen days we return every penny you paid."),
    "office": ("Office", "The office is in Bristol, near the harbour, on the second floor."),
    "backups": ("Backups", "Websites are backed up every night and kept for thirty days."),
}
QUERIES = {
    # Exact codes: BM25 finds the one passage with the rare number, the embedding prefers the look-alikes.
    "code-router": ("Does the KX-4471 router support IPv6 for hosting?", {"kx4471": 1}),
    "code-gateway": ("Can the VT-2290 gateway run a VPN tunnel?", {"vt2290": 1}),
    # Paraphrases: no word in common with the answer, so only the embedding sees it is the same thing.
    "paraphrase-phone": ("When can I ring your helpline?", {"phone": 1}),
    "paraphrase-refund": ("Is a reimbursement possible after ordering?", {"refund": 1}),
}


def scores(tmp_path: Path, embedder: Embedder) -> dict[RetrieverMode, dict[str, float]]:
    """Reciprocal rank of each query's answer, per mode."""
    dataset = Dataset(
        CORPUS, {q: t for q, (t, _) in QUERIES.items()}, {q: j for q, (_, j) in QUERIES.items()}
    )
    write_knowledge_folder(dataset, tmp_path / "kb")
    settings = rag_settings(knowledge_dir=tmp_path / "kb", chroma_path=tmp_path / "db")
    store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)
    ensure_ingested(store, embedder, settings)
    ids = document_ids(dataset)
    results: dict[RetrieverMode, dict[str, float]] = {}
    for mode in ("dense", "lexical", "hybrid"):
        retriever = Retriever(store, embedder, 5, mode=mode, lexical_dir=tmp_path / "db" / "lexical")
        results[mode] = {
            query: mrr_at(rank_documents(retriever.retrieve(text), ids), dataset.qrels[query], 10)
            for query, text in dataset.queries.items()
        }
    return results


def test_hybrid_beats_each_single_mode_where_each_fails(tmp_path: Path, embedder: Embedder) -> None:
    results = scores(tmp_path, embedder)
    dense, lexical, hybrid = results["dense"], results["lexical"], results["hybrid"]
    # Each single mode misses questions of the kind it is blind to...
    assert dense["code-gateway"] < 1, dense
    assert lexical["paraphrase-phone"] == lexical["paraphrase-refund"] == 0, lexical
    # ...and the fusion puts every answer first, so over the set it beats both.
    assert all(rank == 1 for rank in hybrid.values()), hybrid
    mean = {mode: statistics.fmean(r.values()) for mode, r in results.items()}
    assert mean["hybrid"] > max(mean["dense"], mean["lexical"]), mean


def test_lexical_index_is_built_once_per_build_and_reloaded(tmp_path: Path, embedder: Embedder) -> None:
    scores(tmp_path, embedder)
    folders = list((tmp_path / "db" / "lexical").iterdir())
    assert len(folders) == 1  # one index, named after the build, kept for the next start
    stamp = (folders[0] / "chunk_ids.json").stat().st_mtime_ns

    store = KnowledgeStore.persistent(tmp_path / "db", "knowledge")
    retriever = Retriever(store, embedder, 3, mode="lexical", lexical_dir=tmp_path / "db" / "lexical")
    retriever.prepare()
    assert (folders[0] / "chunk_ids.json").stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert "KX-4471 router? It has support" in retriever.retrieve("KX-4471")[0].text


def test_the_service_answers_with_hybrid_retrieval(make_client: AppFactory) -> None:
    client = make_client(rag={"retriever": "hybrid"})
    body = client.post("/chat", json={"message": "How much does the Growth website package cost?"}).json()
    assert body["sources"][0]["source"] == "pricing.md" and "12,500" in body["response"]
