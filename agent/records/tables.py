"""The records' schema. A change here needs a new migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC times in and out, whatever the database keeps (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime}


class AnswerRow(Base):
    """One answer given to a visitor, from any surface, cached or not."""

    __tablename__ = "answers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]
    # The visitor's session hashed (never the id itself, which reads the conversation back), or for a lone
    # question its own answer id: what groups answers into a conversation.
    conversation: Mapped[str] = mapped_column(String(64))
    surface: Mapped[str] = mapped_column(String(16))
    question: Mapped[str | None] = mapped_column(Text)  # None: STORE_TRANSCRIPTS=false
    answer: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    # answered, extractive, curated, small_talk, no_match, withheld or error: what a gap report selects on.
    outcome: Mapped[str] = mapped_column(String(16))
    degraded: Mapped[bool] = mapped_column(Boolean)
    cached: Mapped[bool] = mapped_column(Boolean)
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    retrieval_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_answers_created_at", "created_at"),
        Index("ix_answers_conversation", "conversation", "created_at"),
    )


class FeedbackRow(Base):
    """A visitor's rating of one answer; a second rating replaces the first."""

    __tablename__ = "feedback"

    answer_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True
    )
    rating: Mapped[str] = mapped_column(String(4))  # up or down
    comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime]


class CuratedRow(Base):
    """An answer the owner wrote, served to questions that mean the same as its example questions."""

    __tablename__ = "curated_answers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    questions: Mapped[list[str]] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LeadRow(Base):
    """A visitor's request to be contacted, with the consent given and the conversation that led to it. Kept
    with the body sent to the owner's webhook, built once, so that every retry sends the same signed bytes."""

    __tablename__ = "leads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    message: Mapped[str] = mapped_column(Text)
    consent_at: Mapped[datetime]
    conversation: Mapped[str | None] = mapped_column(String(64))  # the hashed session, as in `answers`
    payload: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_leads_created_at", "created_at"),)


class LeadDeliveryRow(Base):
    """The outbox: one row per lead and channel (webhook, e-mail), written in the lead's own transaction and
    worked off by the courier until it is delivered or given up."""

    __tablename__ = "lead_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(32), ForeignKey("leads.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # webhook or email
    target: Mapped[str] = mapped_column(String(500))  # where it goes, as the owner reads it (no secret)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered or failed
    attempts: Mapped[int] = mapped_column(Integer)
    # When the courier may next try: a claim moves it past the attempt's own time limit, so a replica that
    # dies mid-delivery leaves it to be tried again, and two replicas never send it at once.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_lead_deliveries_due", "status", "next_attempt_at"),
        Index("ix_lead_deliveries_lead", "lead_id"),
    )
