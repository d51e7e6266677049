"""Answer quality, judged: each question of a QA set asked through the agent as visitors reach it.

A QA set is JSON lines: `{"q": ..., "facts": ["£12,500", "four|4"], "scope": "in"|"out", "session": id?}`.
An in-scope answer is *correct* when it holds every fact (any one of a fact's `|` alternatives), compared
without case, spacing or thousands separators. An out-of-scope question is answered *honestly* when the
visitor gets the service's own "I don't know" (`NO_ANSWER_TEXT`). An answer *invents* when one of its
checkable facts (prices, numbers, dates, times, e-mail addresses, phone numbers, URLs, names) is in none of
the passages it was given, the question, the conversation or the service's own fixed replies. Lines with the
same `session` form a conversation: a follow-up is asked with the turns before it, as the widget does.

Scores only describe answers; nothing here changes how they are made.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.agent import Agent, Answer, Done, Text
from agent.conversations import Turn
from agent.facts import unsupported
from agent.stats import percentile

Scope = Literal["in", "out"]
_KEYS = {"q", "facts", "scope", "session"}
_SPACE = re.compile(r"\s+")
_GROUPED = re.compile(r"(?<=\d)[,\u202f\u00a0 ](?=\d{3}(?!\d))")  # the thousands separator in 12,500 / 12 500
_CHARS_PER_TOKEN = 4  # tokens are estimated from characters: the tiers' own tokenizers differ


class QASetError(ValueError):
    """A line of the QA set is not a valid question."""


@dataclass(frozen=True, slots=True)
class QAItem:
    question: str
    facts: tuple[tuple[str, ...], ...]  # each fact: its accepted alternatives
    scope: Scope
    session: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    correct: bool | None  # in scope: every fact present; None for out-of-scope questions
    honest: bool | None  # out of scope: the no-answer reply; None for in-scope questions
    missing: tuple[str, ...] = ()  # facts an in-scope answer lacks
    invented: tuple[str, ...] = ()  # checkable facts of the answer that nothing it was given supports


@dataclass(frozen=True, slots=True)
class Record:
    item: QAItem
    answer: Answer
    verdict: Verdict
    seconds: float
    first_text_seconds: float | None  # when the first piece of text reached the visitor


@dataclass(frozen=True, slots=True)
class Summary:
    correct: int
    in_scope: int
    honest: int
    out_of_scope: int
    invented: int  # answers holding at least one invented fact
    tiers: dict[str, int]
    p50: float
    p95: float
    first_text_p50: float | None
    tokens_per_second: float | None  # median over generated answers, tokens estimated from characters

    def line(self) -> str:
        return (
            f"correct={self.correct}/{self.in_scope} honest={self.honest}/{self.out_of_scope} "
            f"invented={self.invented} p50={self.p50:.3f}s p95={self.p95:.3f}s"
        )


def load_qa(path: Path) -> list[QAItem]:
    items: list[QAItem] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if raw.strip():
            items.append(parse_item(raw, number))
    if not items:
        raise QASetError(f"{path}: no questions")
    return items


def parse_item(raw: str, line: int = 0) -> QAItem:
    where = f"line {line}: " if line else ""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise QASetError(f"{where}not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise QASetError(f"{where}not a JSON object")
    unknown = set(data) - _KEYS
    if unknown:
        raise QASetError(f"{where}unknown keys {sorted(unknown)} (allowed: {sorted(_KEYS)})")
    question, facts, scope, session = (
        data.get("q"),
        data.get("facts", []),
        data.get("scope"),
        data.get("session"),
    )
    if not isinstance(question, str) or not question.strip():
        raise QASetError(f"{where}'q' must be a non-empty string")
    if scope not in ("in", "out"):
        raise QASetError(f'{where}\'scope\' must be "in" or "out"')
    if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
        raise QASetError(f"{where}'facts' must be a list of non-empty strings")
    if scope == "in" and not facts:
        raise QASetError(f"{where}an in-scope question needs at least one fact")
    if scope == "out" and facts:
        raise QASetError(f"{where}an out-of-scope question has no facts")
    if session is not None and (not isinstance(session, str) or not session):
        raise QASetError(f"{where}'session' must be a non-empty string")
    alternatives = tuple(tuple(a.strip() for a in fact.split("|") if a.strip()) for fact in facts)
    return QAItem(question.strip(), alternatives, scope, session, line)


def normalize(text: str) -> str:
    """For comparing facts: no case, one space, no thousands separators, typographic quotes folded."""
    text = text.casefold().replace("\u2019", "'").replace("\u2018", "'")
    return _GROUPED.sub("", _SPACE.sub(" ", text)).strip()


def has_fact(text: str, alternatives: Sequence[str]) -> bool:
    normalized = normalize(text)
    return any(normalize(option) in normalized for option in alternatives)


def judge(
    item: QAItem, answer: Answer, *, no_answer: str, history: Sequence[Turn] = (), fixed: Iterable[str] = ()
) -> Verdict:
    """`no_answer`: the service's "I don't know" text. `fixed`: texts the service says without a model (its
    contact hint, its apologies): facts in them are the owner's, not invented."""
    evidence = [f"{p.title}\n{p.headings}\n{p.text}" for p in answer.sources]
    evidence += [item.question, *fixed]
    for turn in history:
        evidence += [turn.question, turn.answer]
    invented = tuple(dict.fromkeys(fact.text for fact in unsupported(answer.text, evidence)))
    said_no_answer = normalize(answer.text).startswith(normalize(no_answer))
    if item.scope == "out":
        return Verdict(correct=None, honest=said_no_answer, invented=invented)
    missing = tuple("|".join(fact) for fact in item.facts if not has_fact(answer.text, fact))
    correct = not missing and not said_no_answer and answer.status == "success"
    return Verdict(correct=correct, honest=None, missing=missing, invented=invented)


async def ask_all(
    agent: Agent, items: Sequence[QAItem], *, no_answer: str, fixed: Sequence[str] = ()
) -> list[Record]:
    """Every question through `agent.stream`, as a widget asks it; conversations keep their successful
    turns, as the service remembers them."""
    conversations: dict[str, list[Turn]] = {}
    records: list[Record] = []
    for item in items:
        history = tuple(conversations.get(item.session, ())) if item.session else ()
        started = time.perf_counter()
        first: float | None = None
        answer: Answer | None = None
        async for event in agent.stream(item.question, history):
            if isinstance(event, Text) and event.text and first is None:
                first = time.perf_counter() - started
            elif isinstance(event, Done):
                answer = event.answer
        seconds = time.perf_counter() - started
        assert answer is not None  # a stream always ends with Done
        verdict = judge(item, answer, no_answer=no_answer, history=history, fixed=fixed)
        records.append(Record(item, answer, verdict, seconds, first))
        if item.session and answer.status == "success":
            conversations.setdefault(item.session, []).append(Turn(item.question, answer.text))
    return records


def summarize(records: Sequence[Record]) -> Summary:
    latencies = sorted(r.seconds for r in records)
    firsts = [r.first_text_seconds for r in records if r.first_text_seconds is not None]
    # Over the whole generation (from the end of retrieval): a small tier's answer is held until checked and
    # arrives in one piece, so the time after its first text says nothing of its speed.
    rates = [
        len(r.answer.text) / _CHARS_PER_TOKEN / generating
        for r in records
        if r.answer.provider not in ("none", "extractive")
        and (generating := r.seconds - (r.answer.retrieval_time or 0.0)) > 0
    ]
    return Summary(
        correct=sum(1 for r in records if r.verdict.correct),
        in_scope=sum(1 for r in records if r.item.scope == "in"),
        honest=sum(1 for r in records if r.verdict.honest),
        out_of_scope=sum(1 for r in records if r.item.scope == "out"),
        invented=sum(1 for r in records if r.verdict.invented),
        tiers=dict(Counter(_tier(r.answer) for r in records).most_common()),
        p50=percentile(latencies, 0.5) if latencies else 0.0,
        p95=percentile(latencies, 0.95) if latencies else 0.0,
        first_text_p50=statistics.median(firsts) if firsts else None,
        tokens_per_second=statistics.median(rates) if rates else None,
    )


def report(records: Sequence[Record], label: str, *, failures: bool = True) -> list[str]:
    """Lines for a person: what went wrong, question by question, then the figures; the last line is the
    one to compare runs by."""
    lines = [f"== {label}: {len(records)} questions"]
    if failures:
        for r in records:
            verdict, asked = r.verdict, f"line {r.item.line} ({_tier(r.answer)}) {r.item.question!r}"
            if verdict.correct is False:
                lines.append(f"  wrong: {asked} lacks {list(verdict.missing)}")
            if verdict.honest is False:
                lines.append(f"  answered out of scope: {asked}")
            if verdict.invented:
                lines.append(f"  invented: {asked}: {list(verdict.invented)}")
    summary = summarize(records)
    tiers = ", ".join(f"{name} {count}" for name, count in summary.tiers.items())
    lines.append(f"tiers: {tiers}")
    first = f"{summary.first_text_p50:.3f}s" if summary.first_text_p50 is not None else "n/a"
    rate = f"{summary.tokens_per_second:.1f}" if summary.tokens_per_second is not None else "n/a"
    lines.append(f"first text p50: {first}; generated tokens/s (from characters, whole generation): {rate}")
    lines.append(f"{summary.line()} chain={label}")
    return lines


def record_json(record: Record) -> dict[str, object]:
    """One answer as the evaluation saw it, for reading the answers behind the figures."""
    verdict = record.verdict
    return {
        "line": record.item.line,
        "q": record.item.question,
        "scope": record.item.scope,
        "answer": record.answer.text,
        "tier": _tier(record.answer),
        "correct": verdict.correct,
        "honest": verdict.honest,
        "missing": list(verdict.missing),
        "invented": list(verdict.invented),
        "seconds": round(record.seconds, 3),
    }


def _tier(answer: Answer) -> str:
    """Who answered: a tier, or the agent itself (no-match, small-talk) when no model was asked."""
    return answer.provider if answer.provider != "none" else f"none:{answer.model}"
