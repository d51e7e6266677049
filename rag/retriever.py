"""Top-k passages for a question by cosine similarity."""

from __future__ import annotations

from dataclasses import dataclass

from rag.embedder import Embedder
from rag.store import KnowledgeStore


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    source: str
    title: str
    headings: str
    text: str
    score: float


class Retriever:
    def __init__(self, store: KnowledgeStore, embedder: Embedder, top_k: int) -> None:
        self.store = store
        self.embedder = embedder
        self.top_k = top_k

    def retrieve(self, question: str, k: int | None = None) -> list[Passage]:
        """Blocking (model + store): call from a worker thread, not the event loop."""
        hits = self.store.query(self.embedder.embed_query(question), k or self.top_k)
        return [
            Passage(
                id=h.id,
                source=str(h.metadata.get("source", "")),
                title=str(h.metadata.get("title", "")),
                headings=str(h.metadata.get("headings", "")),
                text=h.text,
                score=round(h.score, 4),
            )
            for h in hits
        ]

    @property
    def knowledge_version(self) -> str:
        build = self.store.active_build
        return build.manifest.version if build else "empty"
