"""Retrieval over the bundled knowledge base with the real MiniLM: each file answers its own questions."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.embedder import Embedder
from rag.retriever import Retriever
from rag.store import KnowledgeStore

QUESTIONS = [
    ("What services do you offer?", "services.md"),
    ("Can you build an iPhone and Android app for us?", "services.md"),
    ("How much does the Growth website package cost?", "pricing.md"),
    ("What is your hourly rate for development?", "pricing.md"),
    ("Who owns the code when the project is finished?", "faq.md"),
    ("What is your phone number and office address?", "contact.md"),
    ("What are your office opening hours?", "contact.md"),
    ("How do you handle my personal data under GDPR?", "policies.md"),
    ("Who is the head of design?", "team.md"),
    ("Show me an example project with measurable results for a client", "case-studies.md"),
    ("When was the company founded and what awards has it won?", "history.md"),
    ("How do I raise a support ticket and how fast do you respond?", "support.md"),
]


@pytest.fixture(scope="module")
def retriever(knowledge_store_dir: Path, embedder: Embedder) -> Retriever:
    return Retriever(KnowledgeStore.persistent(knowledge_store_dir, "knowledge"), embedder, top_k=4)


@pytest.mark.parametrize(("question", "expected"), QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_question_finds_its_file_first(retriever: Retriever, question: str, expected: str) -> None:
    passages = retriever.retrieve(question)
    assert len(passages) == 4
    assert passages[0].source == expected, [(p.source, p.score) for p in passages]


def test_every_knowledge_file_is_reachable() -> None:
    assert {expected for _, expected in QUESTIONS} == {p.name for p in Path("knowledge").glob("*.md")}


def test_passages_carry_title_heading_and_cosine_scores(retriever: Retriever) -> None:
    passages = retriever.retrieve("How much does the Growth website package cost?")
    top = passages[0]
    assert top.title == "Pricing" and "Growth" in top.headings and top.text
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores) and scores[0] > 0.4
