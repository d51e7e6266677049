"""Bodies of the dashboard's endpoint: `GET /admin/overview`."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class NumbersOut(BaseModel):
    answers: int
    tiers: dict[str, int] = Field(
        description="Answers by tier (the provider that answered: gemini, openai, local, extractive, "
        "curated, none...); every tier of the period, zeros included."
    )
    no_answer: int = Field(description="Answers that found nothing in the knowledge (outcome no_match).")
    withheld: int = Field(description="Answers withheld (outcome withheld).")
    errors: int = Field(description="Questions that failed (outcome error).")
    thumbs_up: int = Field(description="Answers rated up (by the answer's day).")
    thumbs_down: int
    cached: int = Field(description="Answers served from the answer cache.")
    no_answer_rate: float | None = Field(description="no_answer / answers; null without answers.")
    withheld_rate: float | None = Field(description="withheld / answers; null without answers.")
    cache_hit_rate: float | None = Field(description="cached / answers; null without answers.")
    p50_ms: float | None = Field(description="Median time to answer (nearest rank); null without answers.")
    p95_ms: float | None = Field(description="95th percentile time to answer (nearest rank).")


class DayOut(NumbersOut):
    day: date = Field(description="A UTC day.")


class SourceOut(BaseModel):
    source: str
    answers: int = Field(description="Answers in the period citing this source.")


class OverviewOut(BaseModel):
    days: int
    since: datetime = Field(description="Midnight (UTC) starting the first day of the period.")
    until: datetime = Field(description="When the numbers were read.")
    tiers: list[str] = Field(description="Tiers that answered in the period, most answers first.")
    per_day: list[DayOut] = Field(description="One row per UTC day, oldest first, days without answers too.")
    totals: NumbersOut
    top_sources: list[SourceOut] = Field(description="The 10 sources cited by most answers.")
