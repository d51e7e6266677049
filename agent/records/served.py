"""An answer as it was served, in the compact form that travels to the record writer process, and the
database record made of it there (contact details masked, the session hashed, the outcome named)."""

from __future__ import annotations

import functools
import hashlib
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from agent.records.repository import AnswerRecord
from rag.logs import mask_emails, mask_phones

if TYPE_CHECKING:  # the writer process never imports the answering code
    from agent.agent import Answer


class Served(NamedTuple):
    answer_id: str
    at: float  # epoch seconds
    surface: str
    session_id: str | None
    question: str
    text: str
    provider: str
    model: str
    degraded: bool
    cached: bool
    sources: tuple[tuple[str, str, float], ...]  # source, title, score
    retrieval_time: float | None
    seconds: float


def new_answer_id() -> str:
    """128 random bits as 32 hex digits (a visitor cannot guess another's answer to rate it); a quarter of
    uuid4()'s cost, and every answer gets one."""
    return os.urandom(16).hex()


def served(
    answer_id: str,
    question: str,
    answer: Answer,
    *,
    surface: str,
    session_id: str | None,
    cached: bool,
    seconds: float,
) -> Served:
    """Cheap on purpose (it runs on the request path): plain values, nothing masked or encoded yet."""
    return Served(
        answer_id,
        time.time(),
        surface,
        session_id,
        question,
        answer.text,
        answer.provider,
        answer.model,
        answer.degraded,
        cached,
        tuple([(p.source, p.title, p.score) for p in answer.sources]),
        answer.retrieval_time,
        seconds,
    )


def outcome_of(provider: str, model: str) -> str:
    """What became of a question: the kinds a report counts and filters on."""
    if provider == "none":
        return {
            "no-match": "no_match",
            "small-talk": "small_talk",
            "withheld": "withheld",
            "handoff": "handoff",
        }.get(model, "error")
    if provider in ("extractive", "curated"):
        return provider
    return "answered"


def conversation_of(session_id: str | None, answer_id: str) -> str:
    """A session's answers share a key from which the session id (which reads the conversation back) cannot
    be recovered; a lone question is its own conversation."""
    if not session_id:
        return answer_id
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


def record_of(answer: Served, transcripts: bool) -> AnswerRecord:
    return AnswerRecord(
        id=answer.answer_id,
        created_at=datetime.fromtimestamp(answer.at, UTC),
        conversation=conversation_of(answer.session_id if transcripts else None, answer.answer_id),
        surface=answer.surface[:16],
        question=_masked(answer.question) if transcripts else None,
        answer=_storable(answer.text) if transcripts else None,
        provider=answer.provider[:32],  # the columns' lengths: a long model path must not refuse the record
        model=answer.model[:200],
        outcome=outcome_of(answer.provider, answer.model),
        degraded=answer.degraded,
        cached=answer.cached,
        sources=_sources(answer.sources) if transcripts else None,
        retrieval_ms=None if answer.cached or answer.retrieval_time is None else answer.retrieval_time * 1000,
        total_ms=round(answer.seconds * 1000, 3),
    )


@functools.lru_cache(maxsize=4096)
def _sources(sources: tuple[tuple[str, str, float], ...]) -> list[dict[str, Any]]:
    """Kept for recent answers like `_masked`; only read (encoded as JSON), never changed."""
    return [
        {"source": _storable(s), "title": _storable(t), "score": round(score, 4)} for s, t, score in sources
    ]


@functools.lru_cache(maxsize=4096)
def _masked(question: str) -> str:
    """Contact details masked as in the logs: a report is read by more people than the visitor meant. Kept
    for recent questions: the popular ones (those the answer cache serves) come again and again."""
    return _storable(mask_phones(mask_emails(question)))


def _storable(text: str) -> str:
    """PostgreSQL's text holds no NUL character: one would fail the whole batch."""
    return text.replace("\x00", "")
