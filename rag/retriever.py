"""Top-k passages for a question: dense (cosine over MiniLM), lexical (BM25) or both fused."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.chunking import indexed_text
from rag.embedder import Embedder
from rag.lexical import LexicalIndex, TermStatistics
from rag.settings import RagSettings
from rag.store import Hit, KnowledgeStore

RetrieverMode = Literal["dense", "lexical", "hybrid"]
# Candidates each ranking contributes to the fusion, per passage asked for.
CANDIDATES_PER_RESULT = 5
RRF_K = 60  # the usual constant of reciprocal-rank fusion: dampens the weight of the very top ranks


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    source: str
    title: str
    headings: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Found:
    """A search's passages, with what a relevance decision needs besides them."""

    passages: list[Passage]
    similarity: float | None  # the best cosine similarity of the question to any passage; None: no knowledge


class Retriever:
    def __init__(
        self,
        store: KnowledgeStore,
        embedder: Embedder,
        top_k: int,
        *,
        mode: RetrieverMode = "dense",
        lexical_dir: Path | None = None,
        fusion: Literal["rrf", "convex"] = "convex",
        alpha: float = 0.5,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.top_k = top_k
        self.mode = mode
        self.fusion = fusion
        self.alpha = alpha
        self._lexical_dir = lexical_dir
        self._lexical: LexicalIndex | None = None
        self._lexical_build: str | None = None
        self._lock = threading.Lock()
        # Keyword searches of questions being answered at once; each takes about a millisecond.
        self._keyword_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keyword-search")

    @classmethod
    def of(cls, store: KnowledgeStore, embedder: Embedder, settings: RagSettings) -> Retriever:
        """The retriever the settings describe (the service and the evaluations build it here)."""
        return cls(
            store,
            embedder,
            settings.top_k,
            mode=settings.retriever,
            lexical_dir=settings.chroma_path / "lexical",
            fusion=settings.hybrid_fusion,
            alpha=settings.hybrid_alpha,
        )

    def retrieve(self, question: str, k: int | None = None) -> list[Passage]:
        """Blocking (model + store): call from a worker thread, not the event loop."""
        return self._search(question, k or self.top_k, similarity=False).passages

    def search(self, question: str, k: int | None = None) -> Found:
        """The passages, and the question's best cosine similarity over the whole knowledge (which the dense
        and hybrid searches have anyway; a keyword-only search embeds the question for it). Blocking."""
        return self._search(question, k or self.top_k, similarity=True)

    def _search(self, question: str, k: int, similarity: bool) -> Found:
        best: float | None = None
        if self.mode == "dense":
            hits = self._dense(question, k)
            best = hits[0].score if hits else None
        elif self.mode == "lexical":
            hits = self._lexical_hits(question, k)
            if similarity:
                nearest = self._dense(question, 1)
                best = nearest[0].score if nearest else None
        else:
            hits, best = self._hybrid(question, k)
        return Found([_passage(hit) for hit in hits], best)

    # -- what a relevance decision calibrates against (rag.relevance), once per knowledge version ---------

    @property
    def build_name(self) -> str | None:
        build = self.store.active_build
        return build.name if build else None

    def similarities(self, vectors: Sequence[Sequence[float]]) -> list[float]:
        """Each embedded text's best cosine similarity over the knowledge. Blocking."""
        if not self.store.count():
            return []
        return [hits[0].score for hits in (self.store.query(vector, 1) for vector in vectors) if hits]

    def nearest(self, vector: Sequence[float]) -> Passage | None:
        """The passage nearest in meaning to an embedded text, its score the cosine similarity. Blocking."""
        hits = self.store.query(vector, 1) if self.store.count() else []
        return _passage(hits[0]) if hits else None

    def sample_passages(self, n: int) -> list[str]:
        """The texts of up to `n` passages spread evenly over the knowledge (the same ones every time)."""
        return self.store.sample_texts(n)

    def term_statistics(self) -> TermStatistics | None:
        """The keyword index's passage count and term frequencies (building the index if this mode has
        none yet); None without a place for one."""
        index = self._lexical_index()
        return index.term_statistics() if index else None

    def prepare(self) -> None:
        """Load (or build once) what the mode needs for the active build, before the first question."""
        if self.mode != "dense":
            self._lexical_index()

    def _dense(self, question: str, k: int) -> list[Hit]:
        return self.store.query(self.embedder.embed_query(question), k)

    def _lexical_hits(self, question: str, k: int) -> list[Hit]:
        index = self._lexical_index()
        found = index.search(question, k) if index else []
        scores = dict(found)
        return [Hit(h.id, h.text, h.metadata, scores[h.id]) for h in self.store.get([i for i, _ in found])]

    def _hybrid(self, question: str, k: int) -> tuple[list[Hit], float | None]:
        """Both rankings fused: by reciprocal rank, or by a convex combination of normalized scores.

        The keyword side (search and fetching its candidates) runs in a second thread while the question is
        embedded and the vector index searched: the model and Chroma release the GIL, so on two cores the
        keyword side costs little more than nothing."""
        depth = k * CANDIDATES_PER_RESULT
        keyword = self._keyword_pool.submit(self._keyword_candidates, question, depth)
        dense = self._dense(question, depth)
        lexical, known = keyword.result()
        dense_scores = [(hit.id, hit.score) for hit in dense]
        if self.fusion == "rrf":
            fused = _rrf([dense_scores, lexical])
        else:
            fused = _convex(dense_scores, lexical, self.alpha)
        best = sorted(fused, key=fused.__getitem__, reverse=True)[:k]
        known.update({hit.id: hit for hit in dense})
        # Every passage carries its fused score: a keyword-only match has no cosine, and 0 would misstate it.
        hits = [Hit(i, known[i].text, known[i].metadata, fused[i]) for i in best if i in known]
        return hits, (dense[0].score if dense else None)

    def _keyword_candidates(
        self, question: str, depth: int
    ) -> tuple[list[tuple[str, float]], dict[str, Hit]]:
        index = self._lexical_index()
        lexical = index.search(question, depth) if index else []
        return lexical, {hit.id: hit for hit in self.store.get([i for i, _ in lexical])}

    def _lexical_index(self) -> LexicalIndex | None:
        build = self.store.active_build
        if build is None or self._lexical_dir is None:
            return None
        if self._lexical_build == build.name:
            return self._lexical
        with self._lock:
            if self._lexical_build != build.name:
                folder = self._lexical_dir / build.name
                index = LexicalIndex.load(folder)
                if index is None:
                    _, hits = self.store.chunks()
                    texts = [
                        indexed_text(
                            str(h.metadata.get("title", "")), str(h.metadata.get("headings", "")), h.text
                        )
                        for h in hits
                    ]
                    index = LexicalIndex.build(folder, [h.id for h in hits], texts)
                for stale in self._lexical_dir.iterdir():  # indexes of builds that are gone
                    if stale.is_dir() and stale.name != build.name:
                        shutil.rmtree(stale, ignore_errors=True)
                self._lexical, self._lexical_build = index, build.name
        return self._lexical

    @property
    def knowledge_version(self) -> str:
        build = self.store.active_build
        return build.manifest.version if build else "empty"


def _rrf(rankings: list[list[tuple[str, float]]]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return fused


def _convex(
    dense: list[tuple[str, float]], lexical: list[tuple[str, float]], alpha: float
) -> dict[str, float]:
    """alpha x cosine + (1 - alpha) x BM25's share of its bound: both absolute, on 0 to 1. Unlike ranks,
    scores keep how far ahead a match is; unlike min-max over the candidates, a lone weak match is not
    inflated."""
    fused: dict[str, float] = {}
    for weight, ranking in ((alpha, dense), (1.0 - alpha, lexical)):
        for chunk_id, score in ranking:
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * max(0.0, score)
    return fused


def _passage(hit: Hit) -> Passage:
    return Passage(
        id=hit.id,
        source=str(hit.metadata.get("source", "")),
        title=str(hit.metadata.get("title", "")),
        headings=str(hit.metadata.get("headings", "")),
        text=hit.text,
        score=round(hit.score, 4),
    )
