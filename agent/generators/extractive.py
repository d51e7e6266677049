"""The last tier: no model at all. Picks the retrieved sentences that best answer the question."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from agent.errors import FallThroughError
from agent.generators.base import TierStatus
from agent.prompting import Prompt
from rag.retriever import Passage

# Passages are knowledge files' text, outside input: every pattern here runs in linear time (timed in
# tests/test_regex_linear.py). A whitespace run is tried from its first character only (the lookbehind);
# a list marker only at the start; an emphasis that fails has no closer left on its line, so only a
# bounded number of tries per line reads to the end of it. Links are not a regex: see `_strip_links`.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(.+?)\1")
_WORD = re.compile(r"[a-z0-9£$€%]+(?:['\u2019][a-z]+)?")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "should",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "about",
        "any",
        "tell",
        "know",
        "want",
        "need",
        "like",
        "just",
        "also",
        "get",
    ]
)


@dataclass(frozen=True, slots=True)
class _Candidate:
    text: str
    passage_rank: int
    position: int
    score: float
    terms: frozenset[str]


class ExtractiveGenerator:
    """Always available. Scores each sentence by its passage's retrieval score and by how many of the
    question's content words (lightly stemmed) it covers, spreads the picks over the passages, and
    lays them out in reading order under their section headings."""

    provider = "extractive"
    model = "extractive"

    def __init__(self, max_sentences: int = 4) -> None:
        self._max_sentences = max_sentences

    def status(self) -> TierStatus:
        return TierStatus("ready")

    async def generate(self, prompt: Prompt, *, timeout: float = 0.0) -> str:
        if not prompt.passages:
            raise FallThroughError("no passages to extract an answer from", reason="no_passages")
        chosen = select_sentences(prompt.question, prompt.passages, self._max_sentences)
        if not chosen:
            raise FallThroughError("no usable sentences in the passages", reason="no_passages")
        lines = ["Here is what I found in our knowledge base:", ""]
        for rank, sentences in chosen:
            section = prompt.passages[rank].headings.rsplit(" > ", 1)[-1]
            body = " ".join(sentences)
            lines.append(f"- **{section}**: {body}" if section else f"- {body}")
        return "\n".join(lines)

    async def stream(self, prompt: Prompt, *, timeout: float = 0.0) -> AsyncIterator[str]:
        """No model to wait for: the whole answer, a line at a time."""
        lines = (await self.generate(prompt, timeout=timeout)).split("\n")
        for index, line in enumerate(lines):
            yield line if index == len(lines) - 1 else f"{line}\n"

    async def aclose(self) -> None:
        return None


# Each further sentence taken from the same passage is worth this much less: answers that draw on
# several passages cover more of what the visitor asked.
_SAME_PASSAGE_PENALTY = 0.15


def select_sentences(question: str, passages: tuple[Passage, ...], limit: int) -> list[tuple[int, list[str]]]:
    """The best sentences, grouped by passage rank, in reading order."""
    query = _terms(question)
    candidates: list[_Candidate] = []
    for rank, passage in enumerate(passages):
        for position, sentence in enumerate(_sentences(passage.text)):
            terms = frozenset(_terms(sentence))
            coverage = len(query & terms) / len(query) if query else 0.0
            # Retrieval score carries the topic; coverage picks the sentence; earlier is a light tie-break.
            score = passage.score + 0.6 * coverage - 0.01 * position - 0.02 * rank
            candidates.append(_Candidate(sentence, rank, position, score, terms))

    picked: list[_Candidate] = []
    taken_per_passage: dict[int, int] = {}
    remaining = [c for c in candidates if c.terms]
    while remaining and len(picked) < limit:
        best = max(
            remaining,
            key=lambda c: c.score - _SAME_PASSAGE_PENALTY * taken_per_passage.get(c.passage_rank, 0),
        )
        remaining = [c for c in remaining if c is not best and c.terms != best.terms]
        picked.append(best)
        taken_per_passage[best.passage_rank] = taken_per_passage.get(best.passage_rank, 0) + 1

    grouped: dict[int, list[_Candidate]] = {}
    for candidate in sorted(picked, key=lambda c: (c.passage_rank, c.position)):
        grouped.setdefault(candidate.passage_rank, []).append(candidate)
    return [(rank, [c.text for c in group]) for rank, group in grouped.items()]


def _sentences(text: str) -> list[str]:
    sentences = []
    for raw in _SENTENCE_SPLIT.split(text):
        line = raw.strip()
        if not line or line.startswith(("#", "|", "```")) or set(line) <= set("-=*_ "):
            continue
        line = _LIST_MARKER.sub("", line)
        line = _strip_links(line)
        line = _EMPHASIS.sub(r"\2", line).strip()
        if len(line) >= 20 and len(_terms(line)) >= 3:
            sentences.append(line)
    return sentences


def _strip_links(text: str) -> str:
    r"""`[text](url)` becomes `text`, as `re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)` would, in one pass:
    that regex reads from every `[` to the next `]`, quadratic on a line of 20,000 `[` (3 s)."""
    parts: list[str] = []
    done = 0
    search = text.find("[")
    while search != -1:
        close = text.find("]", search + 1)
        if close == -1:
            break
        # Every `[` before `close` ends its link text there: the first one stands for them all.
        url = close + 2
        end = text.find(")", url) if text.startswith("(", close + 1) and close > search + 1 else url
        if end == -1:
            break  # no `)` left for this link, nor for any after it
        if end > url:
            parts += (text[done:search], text[search + 1 : close])
            done = end + 1
        search = text.find("[", max(close + 1, done))
    parts.append(text[done:])
    return "".join(parts)


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word
