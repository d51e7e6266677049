"""Bodies of the owner's endpoints: feedback, gaps, curated answers and conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from api.schemas import clean_text, no_lone_surrogates

ANSWER_ID_PATTERN = r"^[0-9a-f]{32}$"
CONVERSATION_ID_PATTERN = r"^[0-9a-f]{32}$"
# What a feedback comment may be sent with; FEEDBACK_COMMENT_CHARS of it are kept.
COMMENT_CEILING = 8000

Question = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=500)]


def _text(value: str, field: str) -> str:
    value = clean_text(value).strip()
    if not value:
        raise ValueError(f"{field} must not be empty")
    return value


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: str = Field(pattern=ANSWER_ID_PATTERN, description="The answer's id, from its reply.")
    rating: Literal["up", "down"]
    comment: str | None = Field(
        default=None, max_length=COMMENT_CEILING, description="Optional; FEEDBACK_COMMENT_CHARS are kept."
    )

    _valid_unicode = model_validator(mode="before")(no_lone_surrogates)

    @field_validator("comment")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return clean_text(value) if value is not None else None


class FeedbackOut(BaseModel):
    answer_id: str
    rating: Literal["up", "down"]


class CuratedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    questions: list[Question] = Field(
        min_length=1,
        max_length=50,
        description="Example questions: a visitor's question that means the same "
        "as one of them gets this answer.",
    )
    answer: str = Field(min_length=1, max_length=8000)
    sources: list[SourceName] = Field(
        default_factory=list, max_length=20, description="Shown with the answer."
    )

    _valid_unicode = model_validator(mode="before")(no_lone_surrogates)

    @field_validator("questions")
    @classmethod
    def _questions(cls, value: list[str]) -> list[str]:
        cleaned = [_text(question, "a question") for question in value]
        return list(dict.fromkeys(cleaned))

    @field_validator("answer")
    @classmethod
    def _answer(cls, value: str) -> str:
        return _text(value, "answer")

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        return [_text(source, "a source") for source in value]


class CuratedOut(BaseModel):
    id: str
    questions: list[str]
    answer: str
    sources: list[str]
    created_at: datetime
    updated_at: datetime


class CuratedList(BaseModel):
    answers: list[CuratedOut]


class NearestPassage(BaseModel):
    source: str
    title: str
    score: float = Field(description="Cosine similarity of the question to the passage.")
    text: str = Field(description="The passage's opening.")


class CurateLink(BaseModel):
    method: Literal["POST"] = "POST"
    href: str = "/admin/answers"
    body: dict[str, list[str] | str] = Field(description="A curated answer's body, its questions filled in.")


class GapOut(BaseModel):
    count: int = Field(description="Times asked in the period, in any of its wordings.")
    last_asked: datetime
    examples: list[str] = Field(description="Its wordings, newest first.")
    answer_ids: list[str]
    reasons: dict[str, int] = Field(description="no_match, extractive, withheld, rated_down: how often each.")
    nearest: NearestPassage | None
    curate: CurateLink = Field(description="Write the answer: POST this body with the answer filled in.")


class GapsOut(BaseModel):
    days: int
    since: datetime
    questions: int = Field(description="Questions read for the report.")
    gaps: list[GapOut]


class FeedbackInfo(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None
    rated_at: datetime


class TurnOut(BaseModel):
    answer_id: str
    at: datetime
    surface: str
    question: str | None = Field(description="None when STORE_TRANSCRIPTS=false.")
    answer: str | None
    provider: str
    model: str
    outcome: str = Field(
        description="answered, extractive, curated, small_talk, no_match, withheld or error."
    )
    cached: bool
    degraded: bool
    sources: list[dict[str, str | float]] | None
    retrieval_ms: float | None
    total_ms: float
    feedback: FeedbackInfo | None


class ConversationSummaryOut(BaseModel):
    id: str
    started_at: datetime
    last_at: datetime
    turns: int
    first_question: str | None
    providers: list[str]
    outcomes: list[str]
    ratings: dict[str, int]


class ConversationPageOut(BaseModel):
    total: int
    page: int
    per_page: int
    conversations: list[ConversationSummaryOut]


class ConversationOut(BaseModel):
    id: str
    turns: list[TurnOut]
