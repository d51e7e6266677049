"""Every query of the owner's records. Blocking: the service calls it from worker threads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Engine, Table, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from agent.records.tables import AnswerRow, CuratedRow, FeedbackRow

Rating = Literal["up", "down"]
# Outcomes a knowledge-gap report selects: nothing found, only the extractive fallback, or an answer withheld.
GAP_OUTCOMES = ("no_match", "extractive", "withheld")


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One answer as the database keeps it (text fields None when transcripts are not stored)."""

    id: str
    created_at: datetime
    conversation: str
    surface: str
    question: str | None
    answer: str | None
    provider: str
    model: str
    outcome: str
    degraded: bool
    cached: bool
    sources: list[dict[str, Any]] | None
    retrieval_ms: float | None
    total_ms: float


@dataclass(frozen=True, slots=True)
class Feedback:
    rating: Rating
    comment: str | None
    rated_at: datetime


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    record: AnswerRecord
    feedback: Feedback | None


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    started_at: datetime
    last_at: datetime
    turns: int
    first_question: str | None
    providers: tuple[str, ...]
    outcomes: tuple[str, ...]
    ratings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConversationPage:
    total: int
    conversations: list[ConversationSummary]


@dataclass(frozen=True, slots=True)
class CuratedEntry:
    id: str
    questions: tuple[str, ...]
    answer: str
    sources: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    since: datetime
    rating: Rating | None = None
    provider: str | None = None
    no_answer: bool = False


_RECORD_FIELDS = tuple(f.name for f in fields(AnswerRecord))
_ANSWERS = cast(Table, AnswerRow.__table__)


class Records:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- answers --------------------------------------------------------------------------------------

    def add_answers(self, records: Sequence[AnswerRecord], skip_existing: bool = False) -> None:
        """One transaction: all of them, or none (the writer then tries the batch again). `skip_existing`:
        leave out those already written. One executemany of plain rows: the ORM's bulk insert took a third
        more CPU a record."""
        with self.engine.begin() as connection:
            if skip_existing:
                ids = [record.id for record in records]
                known = set(connection.scalars(select(AnswerRow.id).where(AnswerRow.id.in_(ids))))
                records = [record for record in records if record.id not in known]
            if records:
                rows = [{name: getattr(record, name) for name in _RECORD_FIELDS} for record in records]
                connection.execute(_ANSWERS.insert(), rows)

    def answer_exists(self, answer_id: str) -> bool:
        with self._sessions() as session:
            return session.get(AnswerRow, answer_id) is not None

    def rate(self, answer_id: str, rating: Rating, comment: str | None, now: datetime) -> bool:
        """Rates an answer (a second rating replaces the first); False when the answer is unknown."""
        for _ in range(2):  # a rating written by another request meanwhile: replace it on the second try
            try:
                with self._sessions.begin() as session:
                    if session.get(AnswerRow, answer_id) is None:
                        return False
                    row = session.get(FeedbackRow, answer_id)
                    if row is None:
                        session.add(
                            FeedbackRow(answer_id=answer_id, rating=rating, comment=comment, rated_at=now)
                        )
                    else:
                        row.rating, row.comment, row.rated_at = rating, comment, now
                return True
            except IntegrityError:
                continue
        return True

    def purge(self, before: datetime) -> int:
        """Deletes answers (and their feedback) recorded before `before`; returns how many answers."""
        with self._sessions.begin() as session:
            old = select(AnswerRow.id).where(AnswerRow.created_at < before)
            session.execute(delete(FeedbackRow).where(FeedbackRow.answer_id.in_(old)))
            result = session.execute(delete(AnswerRow).where(AnswerRow.created_at < before))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def gap_questions(self, since: datetime, limit: int) -> list[RecordedAnswer]:
        """Newest first: answers since `since` that found nothing, were only extractive or withheld, or were
        rated down; with their question."""
        query = (
            select(AnswerRow, FeedbackRow)
            .outerjoin(FeedbackRow, FeedbackRow.answer_id == AnswerRow.id)
            .where(AnswerRow.created_at >= since, AnswerRow.question.is_not(None))
            .where(or_(AnswerRow.outcome.in_(GAP_OUTCOMES), FeedbackRow.rating == "down"))
            .order_by(AnswerRow.created_at.desc(), AnswerRow.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [_recorded(answer, feedback) for answer, feedback in session.execute(query)]

    def conversations(self, where: ConversationFilter, limit: int, offset: int) -> ConversationPage:
        """Newest first: conversations with an answer since `where.since` matching the filter."""
        matching = (
            select(AnswerRow.conversation)
            .outerjoin(FeedbackRow, FeedbackRow.answer_id == AnswerRow.id)
            .where(AnswerRow.created_at >= where.since)
        )
        if where.rating is not None:
            matching = matching.where(FeedbackRow.rating == where.rating)
        if where.provider is not None:
            matching = matching.where(AnswerRow.provider == where.provider)
        if where.no_answer:
            matching = matching.where(AnswerRow.outcome == "no_match")
        ids = matching.distinct().subquery()
        grouped = (
            select(
                AnswerRow.conversation,
                func.min(AnswerRow.created_at).label("started"),
                func.max(AnswerRow.created_at).label("last"),
            )
            .where(AnswerRow.conversation.in_(select(ids.c.conversation)))
            .group_by(AnswerRow.conversation)
        )
        with self._sessions() as session:
            total = session.execute(select(func.count()).select_from(ids)).scalar_one()
            page = session.execute(
                grouped.order_by(func.max(AnswerRow.created_at).desc(), AnswerRow.conversation)
                .limit(limit)
                .offset(offset)
            ).all()
            order = [row.conversation for row in page]
            turns: dict[str, list[RecordedAnswer]] = {key: [] for key in order}
            for answer, feedback in session.execute(
                select(AnswerRow, FeedbackRow)
                .outerjoin(FeedbackRow, FeedbackRow.answer_id == AnswerRow.id)
                .where(AnswerRow.conversation.in_(order))
                .order_by(AnswerRow.created_at, AnswerRow.id)
            ):
                turns[answer.conversation].append(_recorded(answer, feedback))
        return ConversationPage(total=int(total), conversations=[_summary(key, turns[key]) for key in order])

    def conversation(self, conversation: str) -> list[RecordedAnswer]:
        """The conversation's answers in order; empty when unknown."""
        query = (
            select(AnswerRow, FeedbackRow)
            .outerjoin(FeedbackRow, FeedbackRow.answer_id == AnswerRow.id)
            .where(AnswerRow.conversation == conversation)
            .order_by(AnswerRow.created_at, AnswerRow.id)
        )
        with self._sessions() as session:
            return [_recorded(answer, feedback) for answer, feedback in session.execute(query)]

    def export(self, since: datetime, batch: int = 500) -> Iterator[RecordedAnswer]:
        """Every answer since `since`, oldest first, read in batches."""
        query = (
            select(AnswerRow, FeedbackRow)
            .outerjoin(FeedbackRow, FeedbackRow.answer_id == AnswerRow.id)
            .where(AnswerRow.created_at >= since)
            .order_by(AnswerRow.created_at, AnswerRow.id)
            .execution_options(yield_per=batch)
        )
        with self._sessions() as session:
            for answer, feedback in session.execute(query):
                yield _recorded(answer, feedback)

    # -- curated answers ------------------------------------------------------------------------------

    def curated(self) -> list[CuratedEntry]:
        with self._sessions() as session:
            rows = session.scalars(select(CuratedRow).order_by(CuratedRow.created_at, CuratedRow.id))
            return [_entry(row) for row in rows]

    def curated_entry(self, entry_id: str) -> CuratedEntry | None:
        with self._sessions() as session:
            row = session.get(CuratedRow, entry_id)
            return _entry(row) if row else None

    def curated_versions(self) -> dict[str, datetime]:
        """Each curated answer's last change: what a replica compares to see whether to reload."""
        with self._sessions() as session:
            return {
                row.id: row.updated_at
                for row in session.execute(select(CuratedRow.id, CuratedRow.updated_at))
            }

    def add_curated(
        self, questions: Sequence[str], answer: str, sources: Sequence[str], now: datetime
    ) -> CuratedEntry:
        row = CuratedRow(
            id=uuid.uuid4().hex,
            questions=list(questions),
            answer=answer,
            sources=list(sources),
            created_at=now,
            updated_at=now,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return _entry(row)

    def change_curated(
        self, entry_id: str, questions: Sequence[str], answer: str, sources: Sequence[str], now: datetime
    ) -> tuple[CuratedEntry, CuratedEntry] | None:
        """(before, after), or None when there is no such entry."""
        with self._sessions.begin() as session:
            row = session.get(CuratedRow, entry_id)
            if row is None:
                return None
            before = _entry(row)
            row.questions, row.answer, row.sources, row.updated_at = (
                list(questions),
                answer,
                list(sources),
                now,
            )
            session.flush()
            return before, _entry(row)

    def remove_curated(self, entry_id: str) -> CuratedEntry | None:
        """The entry removed, or None when there was none."""
        with self._sessions.begin() as session:
            row = session.get(CuratedRow, entry_id)
            if row is None:
                return None
            before = _entry(row)
            session.delete(row)
            return before


def _recorded(answer: AnswerRow, feedback: FeedbackRow | None) -> RecordedAnswer:
    record = AnswerRecord(**{name: getattr(answer, name) for name in _RECORD_FIELDS})
    rated = None
    if feedback is not None:
        rating: Rating = "up" if feedback.rating == "up" else "down"
        rated = Feedback(rating=rating, comment=feedback.comment, rated_at=feedback.rated_at)
    return RecordedAnswer(record, rated)


def _summary(conversation: str, turns: list[RecordedAnswer]) -> ConversationSummary:
    ratings: dict[str, int] = {}
    for turn in turns:
        if turn.feedback is not None:
            ratings[turn.feedback.rating] = ratings.get(turn.feedback.rating, 0) + 1
    return ConversationSummary(
        id=conversation,
        started_at=turns[0].record.created_at,
        last_at=turns[-1].record.created_at,
        turns=len(turns),
        first_question=turns[0].record.question,
        providers=tuple(dict.fromkeys(t.record.provider for t in turns)),
        outcomes=tuple(dict.fromkeys(t.record.outcome for t in turns)),
        ratings=ratings,
    )


def _entry(row: CuratedRow) -> CuratedEntry:
    return CuratedEntry(
        id=row.id,
        questions=tuple(row.questions),
        answer=row.answer,
        sources=tuple(row.sources),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
