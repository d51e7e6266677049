"""The knowledge-gap report: questions the knowledge did not answer well, grouped by meaning.

A question counts when it found nothing, got only the extractive fallback or a withheld answer, or was rated
down. Wordings of one question land in one row: each distinct wording is embedded (the service's own embedder)
and joins the first row whose centroid is at least GAP_SIMILARITY away in cosine, else starts a new one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from agent.records.repository import GAP_OUTCOMES, RecordedAnswer
from rag.retriever import Passage

_SPACE = re.compile(r"\s+")
EXAMPLES = 5


@dataclass
class GapRow:
    count: int
    last_asked: datetime
    examples: list[str]  # distinct wordings, newest first
    answer_ids: list[str]  # the newest answers, to read them in the conversations
    reasons: dict[str, int]  # no_match, extractive, withheld, rated_down
    nearest: Passage | None = None  # the knowledge's passage nearest to the first example


def reasons_of(recorded: RecordedAnswer) -> list[str]:
    reasons = [recorded.record.outcome] if recorded.record.outcome in GAP_OUTCOMES else []
    if recorded.feedback is not None and recorded.feedback.rating == "down":
        reasons.append("rated_down")
    return reasons


def group_gaps(
    answers: Sequence[RecordedAnswer],
    embed: Callable[[Sequence[str]], list[list[float]]],
    nearest: Callable[[Sequence[float]], Passage | None],
    similarity: float,
) -> list[GapRow]:
    """`answers` newest first (as `Records.gap_questions` gives them); rows newest first. Blocking."""
    wordings: dict[str, list[RecordedAnswer]] = {}
    for recorded in answers:
        question = recorded.record.question
        if question:
            wordings.setdefault(_SPACE.sub(" ", question).strip().lower(), []).append(recorded)
    if not wordings:
        return []
    keys = list(wordings)  # first seen = newest
    vectors = np.asarray(embed([wordings[key][0].record.question or key for key in keys]), np.float32)
    rows: list[GapRow] = []
    sums: list[np.ndarray] = []  # each row's vectors added up, one per question asked
    centroids: list[np.ndarray] = []  # the sums normalised
    for key, vector in zip(keys, vectors, strict=True):
        asked = wordings[key]
        best = int(np.argmax(np.stack(centroids) @ vector)) if centroids else -1
        if best < 0 or float(centroids[best] @ vector) < similarity:
            # Wordings come newest first: a row's first is its newest.
            rows.append(GapRow(0, asked[0].record.created_at, [], [], {}, None))
            sums.append(np.zeros_like(vector))
            centroids.append(vector.copy())
            best = len(rows) - 1
            rows[best].nearest = nearest(vector.tolist())
        row = rows[best]
        row.count += len(asked)
        if len(row.examples) < EXAMPLES:
            row.examples.append(asked[0].record.question or key)
        for recorded in asked:
            if len(row.answer_ids) < EXAMPLES:
                row.answer_ids.append(recorded.record.id)
            for reason in reasons_of(recorded):
                row.reasons[reason] = row.reasons.get(reason, 0) + 1
        sums[best] += vector * len(asked)
        centroids[best] = sums[best] / max(float(np.linalg.norm(sums[best])), 1e-9)
    return sorted(rows, key=lambda row: row.last_asked, reverse=True)
