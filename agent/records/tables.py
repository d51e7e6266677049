"""The records' schema. A change here needs a new migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, String, Text
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
