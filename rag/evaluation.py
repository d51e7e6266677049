"""Retrieval quality on a BEIR-format set, measured with the service's own ingestion and retrieval code.

The corpus becomes a knowledge folder (one Markdown file per document, its title as the heading), is
ingested into a temporary store exactly as the service ingests, and each query is answered by the
service's retriever; chunk hits are folded into documents by their best rank.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.retriever import Passage

# Chunks fetched per query: enough distinct documents for the metrics' cut-offs after folding.
CHUNKS_PER_QUERY = 40


@dataclass(frozen=True, slots=True)
class Dataset:
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]  # only queries that have judgements
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}


@dataclass(frozen=True, slots=True)
class Scores:
    ndcg_at_10: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    queries: int


def load_beir(folder: Path, split: str = "test") -> Dataset:
    corpus = {
        str(d["_id"]): (str(d.get("title") or ""), str(d["text"])) for d in _jsonl(folder / "corpus.jsonl")
    }
    qrels: dict[str, dict[str, int]] = {}
    lines = (folder / "qrels" / f"{split}.tsv").read_text().splitlines()
    for line in lines[1:] if lines and lines[0].startswith("query-id") else lines:
        query_id, doc_id, score = line.split("\t")[:3]
        if int(score) > 0:
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {
        str(q["_id"]): str(q["text"]) for q in _jsonl(folder / "queries.jsonl") if str(q["_id"]) in qrels
    }
    return Dataset(corpus, queries, {q: qrels[q] for q in queries})


def write_knowledge_folder(dataset: Dataset, folder: Path) -> None:
    """One Markdown file per document, named by its id (ids may hold characters unfit for file names)."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, (title, text) in enumerate(dataset.corpus.values()):
        heading = f"# {title}\n\n" if title else ""
        (folder / f"{number:07d}.md").write_text(f"{heading}{text}\n")


def document_ids(dataset: Dataset) -> dict[str, str]:
    """File name in the knowledge folder -> document id, as `write_knowledge_folder` names them."""
    return {f"{number:07d}.md": doc_id for number, doc_id in enumerate(dataset.corpus)}


def rank_documents(passages: Iterable[Passage], ids: dict[str, str]) -> list[str]:
    """Documents in the order of their best-ranked chunk."""
    return list(dict.fromkeys(ids[p.source] for p in passages if p.source in ids))


def evaluate(dataset: Dataset, search: Callable[[str], list[Passage]], ids: dict[str, str]) -> Scores:
    ndcg, r5, r10, mrr, latencies = [], [], [], [], []
    for query_id, text in dataset.queries.items():
        started = time.perf_counter()
        ranking = rank_documents(search(text), ids)
        latencies.append((time.perf_counter() - started) * 1000)
        judged = dataset.qrels[query_id]
        ndcg.append(ndcg_at(ranking, judged, 10))
        r5.append(recall_at(ranking, judged, 5))
        r10.append(recall_at(ranking, judged, 10))
        mrr.append(mrr_at(ranking, judged, 10))
    ordered = sorted(latencies)
    return Scores(
        ndcg_at_10=statistics.fmean(ndcg),
        recall_at_5=statistics.fmean(r5),
        recall_at_10=statistics.fmean(r10),
        mrr_at_10=statistics.fmean(mrr),
        latency_p50_ms=statistics.median(ordered),
        latency_p95_ms=ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)],
        queries=len(ordered),
    )


def ndcg_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    """Graded gains (2^rel - 1), log2 discount, as trec_eval and BEIR compute it."""
    gain = sum((2 ** judged.get(doc, 0) - 1) / math.log2(rank + 2) for rank, doc in enumerate(ranking[:k]))
    ideal = sum(
        (2**rel - 1) / math.log2(rank + 2)
        for rank, rel in enumerate(sorted(judged.values(), reverse=True)[:k])
    )
    return gain / ideal if ideal else 0.0


def recall_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    return len(set(ranking[:k]) & set(judged)) / len(judged) if judged else 0.0


def mrr_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    return next((1.0 / (rank + 1) for rank, doc in enumerate(ranking[:k]) if doc in judged), 0.0)


def _jsonl(path: Path) -> Iterable[dict[str, object]]:
    with path.open() as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


# -- abstention: does the agent say "I don't know" when, and only when, the knowledge has nothing? --------

Scope = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Question:
    text: str  # as it is searched: a follow-up carries the question before it, as the agent searches it
    scope: Scope


@dataclass(frozen=True, slots=True)
class AbstentionRow:
    knowledge: str
    questions: str
    scope: Scope
    count: int
    old: int  # questions handled right (in scope: passages kept; out of scope: none) under the old rule
    new: int  # the same under the new one

    def cells(self) -> str:
        def share(n: int) -> str:
            return f"{n}/{self.count} ({n / self.count:.0%})" if self.count else "n/a"

        wanted = "get passages" if self.scope == "in" else 'get "I don\'t know"'
        return f"| {self.knowledge} | {self.questions} | {wanted} | {share(self.old)} | {share(self.new)} |"


def load_questions(path: Path, scope: Scope | None = None) -> list[Question]:
    """A QA set (JSON lines with `q`, `scope` and an optional `session`, as `python -m agent eval` reads them)
    or plain text (one question a line, `#` comments). `scope` overrides the file's (a question asked of
    another knowledge base is out of scope there); plain text is out of scope unless told."""
    questions: list[Question] = []
    previous: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            questions.append(Question(line, scope or "out"))
            continue
        item = json.loads(line)
        text, session = str(item["q"]).strip(), item.get("session")
        searched = f"{previous[session]}\n{text}" if session in previous else text
        if session:
            previous[session] = text
        questions.append(Question(searched, scope or ("in" if item.get("scope") == "in" else "out")))
    return questions


def beir_questions(dataset: Dataset, scope: Scope) -> list[Question]:
    return [Question(text, scope) for text in dataset.queries.values()]


def abstention(
    knowledge: str,
    label: str,
    questions: Sequence[Question],
    old: Callable[[str], bool],
    new: Callable[[str], bool],
) -> list[AbstentionRow]:
    """One row per scope present. `old`/`new`: whether the question keeps passages under each rule."""
    rows = []
    for scope in ("in", "out"):
        asked = [q for q in questions if q.scope == scope]
        if not asked:
            continue
        right_old = sum(1 for q in asked if old(q.text) == (scope == "in"))
        right_new = sum(1 for q in asked if new(q.text) == (scope == "in"))
        rows.append(AbstentionRow(knowledge, label, scope, len(asked), right_old, right_new))
    return rows


def answered_ndcg(
    dataset: Dataset, search: Callable[[str], list[Passage]], ids: dict[str, str], kept: Callable[[str], bool]
) -> float:
    """nDCG@10 where a question the rule abstains on counts as an empty ranking (0)."""
    scores = [
        ndcg_at(rank_documents(search(text), ids), dataset.qrels[query_id], 10) if kept(text) else 0.0
        for query_id, text in dataset.queries.items()
    ]
    return statistics.fmean(scores) if scores else 0.0
