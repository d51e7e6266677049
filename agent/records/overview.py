"""The dashboard's numbers for a period: per UTC day and in total, read from the answers and their feedback.

Blocking: the service calls it from a worker thread. Plain SQL (no date functions, which differ between SQLite
and PostgreSQL): the period's rows are read once, oldest first, a few columns each, and counted here. Memory
stays bounded whatever the traffic: one day's latencies at a time (for that day's percentiles), the sources'
counts, and the whole period's percentiles are read from the database by rank.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, func, select

from agent.records.tables import AnswerRow, FeedbackRow

PERIOD_MAX_DAYS = 365
TOP_SOURCES = 10
_BATCH = 1000  # rows fetched at a time from the database
_ANSWERS = cast(Table, AnswerRow.__table__)
_FEEDBACK = cast(Table, FeedbackRow.__table__)


@dataclass(slots=True)
class Numbers:
    """Counts of one day, or of the whole period. Rates are None when there was no answer to divide by."""

    answers: int = 0
    tiers: dict[str, int] = field(default_factory=dict)  # answers by provider: gemini, extractive, none...
    no_answer: int = 0  # outcome no_match: nothing found in the knowledge
    withheld: int = 0
    errors: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    cached: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def no_answer_rate(self) -> float | None:
        return self._rate(self.no_answer)

    @property
    def withheld_rate(self) -> float | None:
        return self._rate(self.withheld)

    @property
    def cache_hit_rate(self) -> float | None:
        return self._rate(self.cached)

    def _rate(self, count: int) -> float | None:
        return count / self.answers if self.answers else None

    def count(self, provider: str, outcome: str, cached: bool, rating: str | None) -> None:
        self.answers += 1
        self.tiers[provider] = self.tiers.get(provider, 0) + 1
        self.no_answer += outcome == "no_match"
        self.withheld += outcome == "withheld"
        self.errors += outcome == "error"
        self.cached += bool(cached)
        self.thumbs_up += rating == "up"
        self.thumbs_down += rating == "down"


@dataclass(frozen=True, slots=True)
class Day:
    day: date  # a UTC day
    numbers: Numbers


@dataclass(frozen=True, slots=True)
class Overview:
    since: datetime  # midnight (UTC) starting the first day
    until: datetime  # the moment the numbers were read
    tiers: tuple[str, ...]  # every provider that answered in the period, most answers first
    days: list[Day]  # one per UTC day, oldest first, days without answers included (zeros)
    totals: Numbers
    top_sources: list[tuple[str, int]]  # (source, answers citing it), most cited first


def period_start(days: int, now: datetime) -> datetime:
    """Midnight (UTC) starting a period of `days` UTC days whose last day is today: whole days, so that
    every chart's first point counts a full day like the others."""
    if not 1 <= days <= PERIOD_MAX_DAYS:
        raise ValueError(f"days must be 1..{PERIOD_MAX_DAYS}, not {days}")
    today = now.astimezone(UTC).date()
    return datetime.combine(today - timedelta(days=days - 1), time(), tzinfo=UTC)


def overview(engine: Engine, days: int, now: datetime) -> Overview:
    """The numbers of the `days` UTC days ending today (as of `now`), read in one pass over the period's
    answers (with their ratings), oldest first."""
    since = period_start(days, now)
    first = since.date()
    in_period = and_(_ANSWERS.c.created_at >= since, _ANSWERS.c.created_at <= now)
    per_day = [Day(first + timedelta(days=i), Numbers()) for i in range(days)]
    totals = Numbers()
    sources: Counter[str] = Counter()
    rows = (
        select(
            _ANSWERS.c.created_at,
            _ANSWERS.c.provider,
            _ANSWERS.c.outcome,
            _ANSWERS.c.cached,
            _ANSWERS.c.total_ms,
            _ANSWERS.c.sources,
            _FEEDBACK.c.rating,
        )
        .select_from(_ANSWERS.outerjoin(_FEEDBACK, _FEEDBACK.c.answer_id == _ANSWERS.c.id))
        .where(in_period)
        .order_by(_ANSWERS.c.created_at)
    )
    with engine.connect() as connection:
        current: Day | None = None
        latencies = array("d")  # the current day's, in milliseconds: 8 bytes an answer
        for row in connection.execution_options(yield_per=_BATCH).execute(rows):
            index = (row.created_at.date() - first).days
            if not 0 <= index < days:  # cannot happen with the bounds above; a clock's leap must not crash
                continue
            day = per_day[index]
            if day is not current:
                if current is not None:
                    _percentiles(current.numbers, latencies)
                current, latencies = day, array("d")
            day.numbers.count(row.provider, row.outcome, row.cached, row.rating)
            totals.count(row.provider, row.outcome, row.cached, row.rating)
            latencies.append(row.total_ms)
            sources.update(_cited(row.sources))
        if current is not None:
            _percentiles(current.numbers, latencies)
        totals.p50_ms = _ranked(connection, in_period, totals.answers, 50)
        totals.p95_ms = _ranked(connection, in_period, totals.answers, 95)
    tiers = tuple(sorted(totals.tiers, key=lambda tier: (-totals.tiers[tier], tier)))
    for day in per_day:  # every tier on every day: each chart series gets a value per point
        day.numbers.tiers = {tier: day.numbers.tiers.get(tier, 0) for tier in tiers}
    totals.tiers = {tier: totals.tiers[tier] for tier in tiers}
    top = sorted(sources.items(), key=lambda item: (-item[1], item[0]))[:TOP_SOURCES]
    return Overview(since=since, until=now, tiers=tiers, days=per_day, totals=totals, top_sources=top)


def rank(percent: int, count: int) -> int:
    """The nearest-rank percentile's 1-based rank: the smallest value with at least `percent`% of the values
    at or below it. Always one of the values measured, never an interpolation between two."""
    return max(1, math.ceil(percent * count / 100))


def _percentiles(numbers: Numbers, latencies: array[float]) -> None:
    ordered = sorted(latencies)
    numbers.p50_ms = ordered[rank(50, len(ordered)) - 1]
    numbers.p95_ms = ordered[rank(95, len(ordered)) - 1]


def _ranked(connection: Connection, where: ColumnElement[bool], count: int, percent: int) -> float | None:
    """The period's percentile, sorted by the database: the whole period's latencies never sit in memory."""
    if count == 0:
        return None
    query = (
        select(_ANSWERS.c.total_ms)
        .where(where)
        .order_by(_ANSWERS.c.total_ms)
        .limit(1)
        .offset(rank(percent, count) - 1)
    )
    value = connection.execute(query).scalar()
    if value is None:  # rows purged between the two reads: fewer than counted
        value = connection.execute(select(func.max(_ANSWERS.c.total_ms)).where(where)).scalar()
    return float(value) if value is not None else None


def _cited(sources: Iterable[Any] | None) -> set[str]:
    """Each source once per answer (an answer citing two passages of one page counts once for it)."""
    if not sources:
        return set()
    return {s["source"] for s in sources if isinstance(s, dict) and isinstance(s.get("source"), str)}
