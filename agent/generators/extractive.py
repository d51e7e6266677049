"""The last tier: no model at all. Answers with the retrieved sentences that best answer the question.

Every sentence of the passages is scored against the question: the question's words that it holds, each
weighted by how rare it is among the passages' sentences (BM25), so that the one sentence holding the
visitor's rare word ("CEO", "surcharge") beats the many that repeat the topic's common ones. The best one
opens the answer; others follow only if they bear on the question too. A list item, a table row and a
heading are units of their own: two of them glued together read as one sentence that no passage says.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Literal

import Stemmer

from agent.errors import FallThroughError
from agent.facts import unsupported
from agent.generators.base import StreamingGenerator, TierStatus
from agent.prompting import Prompt
from rag.retriever import Passage

# Passages are knowledge files' text, outside input: every pattern here runs in linear time (timed in
# tests/test_regex_linear.py). A whitespace run is tried from its first character only (the lookbehind);
# a list marker only at the start; an emphasis that fails has no closer left on its line, so only a
# bounded number of tries per line reads to the end of it. Links are not a regex: see `_strip_links`.
# `_WORD` and `_TOKEN` never fail once started (each branch matches on its first character alone) and
# their repeated groups start with a character the group before cannot end with, so no match re-reads
# what an earlier attempt read. `_CAPITALISED_RUN` starts only at a word's first letter (the lookbehind)
# and, once it has read two words, always matches: a failed try reads one word.


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(.+?)\1")
_WORD = re.compile(r"[a-z0-9£$€%]+(?:['\u2019][a-z]+)?")
_CAPITALISED_RUN = re.compile(r"(?<![A-Za-z])[A-Z][a-z]+(?:[ \t]+[A-Z][a-z]+)+(?![A-Za-z])")
_TOKEN = re.compile(r"[£$€+]?[0-9]+(?:[.,:/][0-9]+)*%?|[a-z]+|@")

# Words that say nothing of what a question is about: a sentence sharing only these does not bear on it.
_STOPWORDS = _set(
    """a an and are as at be but by can could did do does for from had has have how i if in into is it its
    me my of on or our please should so than that the their them then there these they this to us was we
    were what when where which who whom why will with would you your yours about any tell know want need
    like just also get been being some much many he him his she her hers ours theirs don doesn didn isn
    aren wasn weren won wouldn shouldn couldn haven hasn hadn come comes came go goes going went make makes
    made take takes took give gives gave put see say says let lot thing things really very actually well
    sure still even ever way something anything everything someone anyone up out off one most"""
)
# After "how" these words ask for a kind of answer (an amount, a duration): they are not its subject.
_HOW_WORDS = _set("much many long often soon far quickly big large")
# A sentence opening with one of these leans on the one before it ("She founded it in 2016").
_PRONOUNS = _set("She He It They This These Those Its Their His Her Both")
# Abbreviations that end in a full stop without ending the sentence.
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "Mr.", "Mrs.", "Ms.", "Dr.", "St.", "vs.", "No.", "approx.")

_STEMMER = Stemmer.Stemmer("english")  # the keyword index's stemmer: "payments" meets "payment"

UnitKind = Literal["sentence", "item", "row", "lead"]
AnswerType = Literal[
    "money", "percent", "time", "duration", "number", "year", "email", "phone", "url", "address"
]

# BM25 over the sentences (k1, b as usual): terms are counted once per sentence.
_K1 = 1.2
_B = 0.75
# What a question's word is worth when only the unit's section heading holds it (a FAQ's question, a
# person's name over their biography), or only the line that introduces its list: the unit is about it
# without saying it.
_HEADING_WEIGHT = 0.4
_LEAD_WEIGHT = 0.6
# A follow-up ("and how long does it take?") names nothing: the previous question's words count, less.
_PREVIOUS_WEIGHT = 0.5
# A unit holding the kind of fact the question asks for (an amount for "how much", a time for "when")
# gains this share of the question's rarest word: it is as telling as one more word of the question.
_TYPE_BONUS = 1.0
# A code of letters and digits in the question ("P2", "ISO27001") names exactly one thing.
_CODE_WEIGHT = 1.5
# Units of one passage scoring within this fraction of each other are equally good openers.
_TIE = 0.9
# A sentence that points at other text ("Below is an overview...", "See our Pricing page") rather than saying
# something: ranked as if it shared half as much with the question. Anchored at the start: linear.
_SIGNPOST = re.compile(
    r"(?:below|above|the following|here (?:is|are)|this (?:page|section|document)|see|for more)\b",
    re.IGNORECASE,
)
_SIGNPOST_WEIGHT = 0.5
# A supporting unit must score at least this fraction of the opening one.
_SUPPORT_FRACTION = 0.5
# Units sharing this share of their words are one unit said twice (chunks overlap).
_DUPLICATE = 0.8
# A chunk of the largest size (8,192 tokens) holds a few hundred sentences: a passage's units (and lines, and
# a paragraph's sentences) beyond this many are not read, which bounds what a hostile file can cost.
_MAX_UNITS = 500
_LIST_ITEMS = 8  # items of a list the answer opens with, at most
# A title or heading longer than this is no heading a reader wants to see over an answer: it is not used.
_HEADING_CHARS = 200
# A sentence with fewer content words ("Yes.", "You do.") is read with the one after it, if it is short.
_MIN_TERMS = 2
_SHORT = 40  # characters
# A line this long that does not end a sentence was wrapped: the next line goes on with it.
_WRAPPED = 60


@dataclass(frozen=True, slots=True)
class _Unit:
    """One answerable piece of a passage: a sentence, a list item, a table row, or the sentence that
    introduces a list. Never more than one of them."""

    text: str
    raw: str  # as written, markdown and all
    kind: UnitKind
    block: int  # units of the same paragraph, list or table share this number
    terms: frozenset[str]
    lead: frozenset[str]  # words of the sentence that introduces the unit's list, table or paragraph
    heading: str  # the heading inside the passage's text that the unit is under, if any
    heading_terms: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Candidate:
    unit: _Unit
    rank: int  # of its passage
    position: int  # in its passage
    score: float
    support: float  # its score as a supporting unit: the kind of fact counts only beside a shared word
    current: bool  # it holds a word of this question, not only of the one before
    opening: bool = False  # the answer opens with it: the best unit, or one that unit cannot go without


@dataclass(frozen=True, slots=True)
class _Question:
    weights: dict[str, float]  # stemmed word -> weight (the previous question's count less)
    types: frozenset[AnswerType]
    current: frozenset[str]  # the words of this question, not of the one before


class ExtractiveGenerator(StreamingGenerator):
    """Always available. Opens with the sentence of the passages that best answers the question, then
    adds at most `max_sentences - 1` more that bear on it."""

    provider = "extractive"
    model = "extractive"

    def __init__(self, max_sentences: int = 4) -> None:
        self._max_sentences = max_sentences

    def status(self) -> TierStatus:
        return TierStatus("ready")

    async def stream(self, prompt: Prompt, *, timeout: float = 0.0) -> AsyncIterator[str]:
        """No model to wait for: the whole answer, a line at a time."""
        lines = self._answer(prompt).split("\n")
        for index, line in enumerate(lines):
            yield line if index == len(lines) - 1 else f"{line}\n"

    def _answer(self, prompt: Prompt) -> str:
        if not prompt.passages:
            raise FallThroughError("no passages to extract an answer from", reason="no_passages")
        previous = prompt.history[-1].question if prompt.history else ""
        question = _question(prompt.question, previous)
        groups = _select(question, prompt.passages, self._max_sentences)
        if not groups:
            raise FallThroughError("no sentence of the passages bears on the question", reason="no_match")
        return _render(groups, prompt.passages, question)

    async def aclose(self) -> None:
        return None


def select_sentences(
    question: str, passages: tuple[Passage, ...], limit: int, previous: str = ""
) -> list[tuple[int, list[str]]]:
    """The chosen units grouped by passage rank, in the answer's order: the opening sentence's passage
    first, each passage's units in reading order. `previous`: the question before, for a follow-up."""
    groups = _select(_question(question, previous), passages, limit)
    return [(group[0].rank, [c.unit.text for c in group]) for group in groups]


def opening(question: str, passages: tuple[Passage, ...], limit: int, previous: str = "") -> str:
    """What the answer opens with, as it shows it: the best sentence, the one before it that it leans on
    ("She founded it in 2016"), or a list's lead with the items it chose, under the heading that labels them
    ("**Growth - £12,500**: Our most popular package."); "" when no sentence bears on the question."""
    asked = _question(question, previous)
    groups = _select(asked, passages, limit)
    if not groups:
        return ""
    return _render([[c for c in groups[0] if c.opening]], passages, asked)


# --- Choosing ---


def _question(question: str, previous: str) -> _Question:
    weights = _query(question, 1.0)
    current = frozenset(weights)
    for term, weight in _query(previous, _PREVIOUS_WEIGHT).items():
        weights.setdefault(term, weight)
    types = _question_types(question) or _question_types(previous)
    return _Question(weights, types, current)


def _select(question: _Question, passages: tuple[Passage, ...], limit: int) -> list[list[_Candidate]]:
    wanted = question.weights
    if limit < 1 or not wanted:
        return []
    parsed = [_units(p.text) for p in passages]
    sections = [_section_terms(p) for p in passages]
    total = sum(len(units) for units in parsed)
    if not total:
        return []

    frequency: dict[str, int] = {}
    length = 0
    for units in parsed:
        for unit in units:
            length += len(unit.terms)
            for term in unit.terms & wanted.keys():
                frequency[term] = frequency.get(term, 0) + 1
    average = max(length / total, 1.0)
    idf = {
        term: math.log(1 + (total - frequency.get(term, 0) + 0.5) / (frequency.get(term, 0) + 0.5))
        for term in wanted
    }
    present = [term for term in wanted if term in frequency or any(term in s[0] for s in sections)]
    bonus = _TYPE_BONUS * max((idf[t] * wanted[t] for t in present), default=0.0)

    candidates: list[_Candidate] = []
    for rank, units in enumerate(parsed):
        section, own_heading, section_types = sections[rank]
        for position, unit in enumerate(units):
            # Only a longer sentence's words count less: a short one ("Our most popular package.") is no
            # better an answer for being short.
            norm = (_K1 + 1) / (1 + _K1 * (1 - _B + _B * max(len(unit.terms), average) / average))
            score = 0.0
            current = False
            for term, weight in wanted.items():
                if term in unit.terms or term in unit.lead or term in unit.heading_terms or term in section:
                    current = current or term in question.current
                if term in unit.terms:
                    score += weight * idf[term] * norm
                elif term in unit.lead:
                    score += weight * idf[term] * _LEAD_WEIGHT
                elif term in unit.heading_terms or term in section:
                    score += weight * idf[term] * _HEADING_WEIGHT
            if score <= 0:
                continue  # nothing of the question in it, nor in its heading: it is never used
            if _SIGNPOST.match(unit.text):
                score *= _SIGNPOST_WEIGHT  # "Below is an overview of our services" tells nothing itself
            support = score
            if question.types and question.types & (_types(unit.text) | section_types):
                score += bonus
                # Only beside a word of the question in the unit or the heading it answers (a FAQ's
                # question): else every row of a price table would support the one row asked about.
                said = unit.terms | (unit.heading_terms if unit.heading else own_heading)
                support += bonus if said & wanted.keys() else 0.0
            # Ties go to the passage retrieval ranked higher, then to the earlier unit.
            tie = 0.001 * passages[rank].score - 0.0001 * position
            candidates.append(_Candidate(unit, rank, position, score + tie, support + tie, current))
    if not candidates:
        return []

    ranked = sorted(candidates, key=lambda c: -c.score)
    introduced = _introduced(parsed)
    # A sentence that introduces a list ("Please include:") answers only with its list.
    usable = [c for c in ranked if c.unit.kind != "lead" or introduced.get((c.rank, c.position))]
    if not usable:
        return []
    # Of near-equals in one passage the first opens: the passage then reads on in its own order.
    opener = min(
        (c for c in usable if c.rank == usable[0].rank and c.score >= _TIE * usable[0].score),
        key=lambda c: c.position,
    )
    opener = dataclasses.replace(opener, opening=True)
    picked = [opener]
    before = parsed[opener.rank][opener.position - 1] if opener.position else None
    if _leans_back(opener.unit) and before and before.block == opener.unit.block and before.kind != "lead":
        # "She founded it in 2016" needs the sentence that says who she is, whatever its score.
        picked.insert(0, _Candidate(before, opener.rank, opener.position - 1, 0.0, 0.0, False, True))
    follow_up = any(c.current for c in candidates) and len(question.current) < len(wanted)
    if opener.unit.kind == "lead":
        scored = {(c.rank, c.position): c for c in candidates}
        items = [
            dataclasses.replace(scored[(opener.rank, p)], opening=True)
            if (opener.rank, p) in scored
            else _Candidate(parsed[opener.rank][p], opener.rank, p, 0.0, 0.0, False, True)
            for p in introduced[(opener.rank, opener.position)]
        ]
        # A list is shown whole up to a length a visitor reads at a glance: three items of "Please include:"
        # read as the whole of what to include.
        shown = max(limit - 1, _LIST_ITEMS)
        picked += sorted(sorted(items, key=lambda c: -c.score)[:shown], key=lambda c: c.position)

    for candidate in ranked:
        if len(picked) >= limit:
            break
        if candidate.unit.kind == "lead" or candidate.support < _SUPPORT_FRACTION * opener.score:
            continue
        if follow_up and not candidate.current:
            continue  # a follow-up is about its own words; the question before only helps to read it
        if candidate.rank == opener.rank and candidate.position < picked[0].position:
            continue  # the answer opens with the best sentence, and a passage reads in its own order
        if any(c.unit is candidate.unit or _near_duplicate(c.unit, candidate.unit) for c in picked):
            continue
        picked.append(candidate)

    groups: dict[int, list[_Candidate]] = {opener.rank: []}
    for candidate in sorted(picked, key=lambda c: (c.rank, c.position)):
        groups.setdefault(candidate.rank, []).append(candidate)
    best = {rank: max(c.score for c in group) for rank, group in groups.items()}
    order = sorted(groups, key=lambda rank: (rank != opener.rank, -best[rank]))
    return [groups[rank] for rank in order]


def _introduced(parsed: list[tuple[_Unit, ...]]) -> dict[tuple[int, int], list[int]]:
    """For each sentence that introduces a list (or a table, or a paragraph), what it introduces."""
    found: dict[tuple[int, int], list[int]] = {}
    for rank, units in enumerate(parsed):
        for position, unit in enumerate(units):
            if unit.kind != "lead":
                continue
            following = position + 1
            items = []
            while (
                following < len(units)
                and units[following].kind != "lead"
                and units[following].block == units[position + 1].block
            ):
                items.append(following)
                following += 1
            found[(rank, position)] = items
    return found


def _leans_back(unit: _Unit) -> bool:
    """Whether a unit opens with a word that stands for something said before it."""
    return unit.text.split(" ", 1)[0] in _PRONOUNS


def _near_duplicate(a: _Unit, b: _Unit) -> bool:
    """Whether `b` says nothing that `a` does not: most of its words, and none of its numbers, are new."""
    if not a.terms or not b.terms:
        return a.text == b.text
    numbers = {t for t in b.terms if any(ch.isdigit() for ch in t)}
    if not numbers <= a.terms:
        return False
    return len(a.terms & b.terms) / min(len(a.terms), len(b.terms)) >= _DUPLICATE


@functools.lru_cache(maxsize=256)
def _section_parts(
    title: str, headings: str
) -> tuple[tuple[str, frozenset[str], frozenset[AnswerType]], ...]:
    parts = [title, *headings.split(" > ")] if headings else [title]
    return tuple(
        (part, _terms(part), _types(part)) for part in parts if part.strip() and len(part) <= _HEADING_CHARS
    )


def _section_terms(passage: Passage) -> tuple[frozenset[str], frozenset[str], frozenset[AnswerType]]:
    """The words of the passage's title and headings, of its own (deepest) heading, and the kinds of fact
    its headings hold (a year over a list of milestones)."""
    parts = _section_parts(passage.title, passage.headings)
    terms: frozenset[str] = frozenset().union(*(terms for _, terms, _ in parts))
    types: frozenset[AnswerType] = frozenset().union(*(types for _, _, types in parts[1:]))
    return terms, parts[-1][1] if parts else frozenset(), types


# --- Writing the answer ---


def _render(groups: list[list[_Candidate]], passages: tuple[Passage, ...], question: _Question) -> str:
    """A paragraph per passage. List items and table rows keep a line each, so that no two of them read
    as one sentence. A passage whose sentences do not say what makes them an answer (whose biography, which
    year, which question of a FAQ) is labelled with the heading that does."""
    paragraphs: list[str] = []
    labelled = ""
    for group in groups:
        lines: list[str] = []
        listed = sum(1 for c in group if c.unit.kind in ("item", "row")) > 1
        prose: list[str] = []
        for candidate in group:
            text = _faithful(candidate.unit, passages[group[0].rank].text)
            if candidate.unit.kind in ("item", "row"):
                if prose:
                    lines.append(" ".join(prose))
                    prose = []
                lines.append(f"- {text}" if listed else text)
            else:
                prose.append(text)
        if prose:
            lines.append(" ".join(prose))
        label = _label(group, passages[group[0].rank], question)
        if label and label != labelled:  # overlapping chunks of one section: said once is enough
            lines[0] = f"**{label}**:" + ("\n" if lines[0].startswith("- ") else " ") + lines[0]
            labelled = label
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _faithful(unit: _Unit, passage: str) -> str:
    """The unit cleaned of markup, unless that reads as a fact its passage does not hold: markup removed
    can join what it kept apart ("**0117 496 0999** (24 hours" reads as one longer number), and a table
    row is written out with its header's names. Then it is given as written."""
    if unit.text != unit.raw and any(ch.isdigit() for ch in unit.text) and unsupported(unit.text, [passage]):
        return unit.raw
    return unit.text


def _label(group: list[_Candidate], passage: Passage, question: _Question) -> str:
    """The deepest heading over the group that holds a word of the question, or the kind of fact it asks
    for, that none of the group's units holds."""
    said = frozenset().union(*(c.unit.terms | c.unit.lead for c in group))
    said_types = frozenset().union(*(_types(c.unit.text) for c in group))
    headings = [
        (part, terms, types) for part, terms, types in _section_parts(passage.title, passage.headings)
    ]
    inside = group[0].unit.heading
    if inside:
        headings.append((inside, group[0].unit.heading_terms, _types(inside)))
    deepest = headings[1:] if len(headings) > 1 else headings
    for part, terms, types in reversed(deepest):
        if (terms - said) & question.weights.keys() or (types - said_types) & question.types:
            return part
    # "She leads our AI work": the heading over a biography says who.
    return deepest[-1][0] if deepest and _leans_back(group[0].unit) else ""


# --- Reading a passage into units ---


_CACHED_CHARS = 8_000


def _units(text: str) -> tuple[_Unit, ...]:
    """The passage's units in reading order. The same passages come back question after question: each
    is read once, unless it is far longer than a chunk (the cache stays small)."""
    return _read(text) if len(text) > _CACHED_CHARS else _read_cached(text)


def _read(text: str) -> tuple[_Unit, ...]:
    return tuple(itertools.islice(_read_units(text), _MAX_UNITS))


_read_cached = functools.lru_cache(maxsize=256)(_read)


def _sentences(text: str) -> list[str]:
    """The units of a passage as text, in reading order."""
    return [unit.text for unit in _units(text)]


def _read_units(text: str) -> Iterable[_Unit]:
    reader = _Reader()
    lines = text.split("\n", _MAX_UNITS)[:_MAX_UNITS]
    in_code = False
    for index, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("```"):
            yield from reader.flush()
            in_code = not in_code
        elif in_code:
            continue  # code reads badly as an answer
        elif not line:
            yield from reader.flush()
            reader.header = None
        elif line.startswith("#"):
            yield from reader.flush()
            reader.new_heading(_clean(line.lstrip("#")))
        elif line.startswith("|"):
            yield from reader.flush()
            row = line.strip("|")
            if set(row) <= set("|-: "):
                continue  # the line under a table's header
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            if reader.last != "row" and following.startswith("|") and set(following) <= set("|-: "):
                reader.header = [_clean(cell) for cell in row.split("|")]  # it names the cells below
                continue
            yield from reader.row(row.strip())
        elif set(line) <= set("-=*_ "):
            yield from reader.flush()  # a rule, or the underline of a heading
        elif marker := _LIST_MARKER.match(line):
            yield from reader.flush()
            reader.start(line[marker.end() :], "item")
        elif reader.continues(line, raw):
            reader.block.append(line)
        else:
            yield from reader.flush()
            reader.start(line, "prose")
    yield from reader.flush()


class _Reader:
    """Markdown (or plain text) read block by block: a paragraph, a list, a table. The sentence that ends
    in a colon lends its words to the block it introduces."""

    def __init__(self) -> None:
        self.heading = ""
        self.heading_terms: frozenset[str] = frozenset()
        self.number = 0  # of the block being read
        self.block: list[str] = []
        self.kind: Literal["prose", "item"] = "prose"
        self.last = ""  # what the block before was: prose, item, row or heading
        self.lead: frozenset[str] = frozenset()
        self.header: list[str] | None = None

    def new_heading(self, title: str) -> None:
        if title and len(title) <= _HEADING_CHARS:
            self.heading, self.heading_terms = title, _terms(title)
        self.lead = frozenset()
        self.last = "heading"

    def start(self, line: str, kind: Literal["prose", "item"]) -> None:
        self.block, self.kind = [line], kind

    def continues(self, line: str, raw: str) -> bool:
        """Whether a line goes on with the one before (a paragraph wrapped at a width, an indented list
        item) rather than start a unit of its own: the lines of an unmarked list must never be glued
        together. A wrapped line is long, or stops mid-phrase; a list's lines are short and whole."""
        if not self.block:
            return False
        if self.kind == "item":
            return raw[:1] in (" ", "\t") and line[:1].islower()
        previous = self.block[-1]
        if previous[-1:] in ".!?:":
            return False
        last_word = previous.rsplit(" ", 1)[-1].lower()
        return (
            line[:1].islower() or len(previous) >= _WRAPPED or previous[-1:] == "," or last_word in _STOPWORDS
        )

    def _lead_for(self, kind: str) -> frozenset[str]:
        """The introducing sentence's words, for the block right after it (all of a list or a table)."""
        if self.last != "prose" and self.last != kind:
            self.lead = frozenset()
        return self.lead

    def _unit(
        self, text: str, raw: str, kind: UnitKind, lead: frozenset[str], terms: frozenset[str]
    ) -> _Unit:
        return _Unit(text, raw, kind, self.number, terms, lead, self.heading, self.heading_terms)

    def row(self, raw: str) -> Iterable[_Unit]:
        cells = [_clean(cell) for cell in raw.split("|")]
        lead = self._lead_for("row")
        if self.last != "row":
            self.number += 1
        self.last = "row"
        names = self.header or []
        lead = lead | _terms(" ".join(names))
        text = "; ".join(
            f"{names[k]}: {cell}" if k < len(names) and names[k] else cell
            for k, cell in enumerate(cells)
            if cell
        )
        if text:
            yield self._unit(text, raw, "row", lead, _terms(" ".join(cells)))

    def flush(self) -> Iterable[_Unit]:
        if not self.block:
            return
        joined, kind = " ".join(self.block), self.kind
        self.block = []
        if kind == "item":
            lead = self._lead_for("item")
            if self.last != "item":
                self.number += 1
            self.last = "item"
            for sentence, raw, terms in _split(joined, keep_short=True):
                yield self._unit(sentence, raw, "item", lead, terms)
            return
        lead = self.lead if self.last == "prose" else frozenset()
        self.number += 1
        self.last = "prose"
        units = [
            self._unit(text, raw, "sentence", lead, terms)
            for text, raw, terms in _split(joined, keep_short=False)
        ]
        self.lead = frozenset()
        if units and units[-1].text.endswith(":"):
            units[-1] = dataclasses.replace(units[-1], kind="lead")
            self.lead = units[-1].terms
        yield from units


def _split(text: str, *, keep_short: bool) -> Iterable[tuple[str, str, frozenset[str]]]:
    """A paragraph's sentences, cleaned of markdown and as written. One with too few words to stand alone
    ("Yes.") is read with the next; `keep_short` keeps a list item's last one even so."""
    pieces: list[list[str]] = []  # a sentence's parts: joined once, or a long run of "e.g." is quadratic
    for raw in _SENTENCE_SPLIT.split(text):
        piece = raw.strip()
        if pieces and pieces[-1][-1].endswith(_ABBREVIATIONS):
            pieces[-1].append(piece)
        elif piece:
            pieces.append([piece])
    carried = ""
    for parts in pieces[:_MAX_UNITS]:
        raw = " ".join([carried, *parts] if carried else parts)
        sentence = _clean(raw)
        if not sentence:
            continue
        terms = _terms(sentence)
        if len(terms) < _MIN_TERMS and not sentence.endswith(":"):
            # Only a short one waits for the next: a run of them must not grow into one long sentence.
            carried = raw if len(raw) <= _SHORT else ""
            continue
        carried = ""
        yield sentence, raw, terms
    if carried and keep_short and (terms := _terms(_clean(carried))):
        yield _clean(carried), carried, terms


def _clean(text: str) -> str:
    text = _strip_links(text.strip())
    return _EMPHASIS.sub(r"\2", text).strip()


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


# --- Words, and the kinds of fact a question asks for ---


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("e-mail", "email"))


def _question_words(question: str) -> list[str]:
    """A question's words, less "charge" in "in charge of": who leads a team is no question of price."""
    words = _words(question)
    return [w for k, w in enumerate(words) if not (w == "charge" and k and words[k - 1] == "in")]


def content_terms(text: str) -> frozenset[str]:
    """The stemmed words of `text` that say what it is about (no stopwords), as sentences are scored."""
    return _terms(text)


def _terms(text: str) -> frozenset[str]:
    terms = {_stem(w) for w in _words(text) if w not in _STOPWORDS and len(w) > 1}
    return frozenset((terms - _STOPWORDS) | _acronyms(text))


def _query(question: str, weight: float) -> dict[str, float]:
    words = _question_words(question)
    kept = [w for k, w in enumerate(words) if not (w in _HOW_WORDS and k and words[k - 1] == "how")]
    stems = (_stem(w) for w in kept if w not in _STOPWORDS and len(w) > 1)
    return {
        stem: weight * (_CODE_WEIGHT if stem.isalnum() and not stem.isalpha() and not stem.isdigit() else 1.0)
        for stem in stems
        if stem not in _STOPWORDS
    }


def _stem(word: str) -> str:
    # No word of a language is this long; a run of letters that is (outside input) is not kept in the cache.
    return _stem_word(word) if len(word) <= 40 else word


@functools.lru_cache(maxsize=8192)
def _stem_word(word: str) -> str:
    word = word.replace("\u2019", "'")
    return str(_STEMMER.stemWord(word.split("'", 1)[0] if "'" in word else word))


def _acronyms(text: str) -> set[str]:
    """Runs of capitalised words read as their initials too: visitors ask for the "CEO", a team page
    names the "Chief Executive Officer"."""
    found = set()
    for run in _CAPITALISED_RUN.findall(text):
        words = run.split()
        if len(words) <= 5:
            found.add("".join(word[0] for word in words).lower())
    return found


_MONEY_WORDS = _set(
    "cost costs price prices pricing priced charge charges fee fees cheap cheaper cheapest expensive "
    "budget rate rates surcharge pay"
)
_TIME_WORDS = _set("time times open opening hours")
_DURATION_UNITS = _set(
    "minute minutes min mins hour hours hr hrs day days week weeks month months year years"
)
_DURATION_FILLERS = _set("working business support calendar full more")
_NUMBER_WORDS = _set(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty "
    "sixty hundred thousand"
)
_CURRENCY_WORDS = _set("pounds pound dollars dollar euros euro gbp usd eur")
_STREET_WORDS = _set(
    "road rd street st avenue ave lane ln floor suite building house quay square drive boulevard blvd "
    "court place unit"
)
_PLACE_WORDS = _set("office offices based located location headquarters hq find visit")


# "When" asks for a time at the start of a question or a clause ("and when ...", "tell me when ...");
# elsewhere it is a conjunction ("is there a deposit when I hire a bike?").
_ASKS = frozenset(["", "and", "but", "so", "me", "us", "know", "ask", "then"])


def asks_for(question: str) -> frozenset[AnswerType]:
    """The kinds of fact a question asks for ("How much ...?": an amount); empty when it is not clear."""
    return _question_types(question)


def holds(text: str) -> frozenset[AnswerType]:
    """The kinds of fact a text states."""
    return _types(text)


def _question_types(question: str) -> frozenset[AnswerType]:
    """The kinds of fact a question asks for, from its wording."""
    words = _question_words(question)
    found: set[AnswerType] = set()
    for k, word in enumerate(words):
        before = words[k - 1] if k else ""
        after = words[k + 1] if k + 1 < len(words) else ""
        if before == "how" and word == "much":
            found |= {"percent", "number"} if k >= 2 and words[k - 2] == "by" else {"money"}
        elif before == "how" and word == "many":
            found.add("number")
        elif before == "how" and word in ("long", "soon", "quickly", "often"):
            found.add("duration")
        elif word in _MONEY_WORDS:
            found.add("money")
        elif word in ("percent", "percentage", "discount", "discounts"):
            found.add("percent")
        elif (word == "when" and before in _ASKS) or (
            word in _TIME_WORDS and before in ("what", "which", "opening", "office")
        ):
            found |= {"time", "year"}
        elif word == "email" or (word == "address" and before == "email"):
            found.add("email")
        elif word in ("address", "located", "location") and before not in ("web", "website", "ip"):
            found.add("address")
        elif word in ("phone", "telephone", "ring") or (word == "number" and before in ("phone", "what")):
            found.add("phone")
        elif word in ("link", "url"):
            found.add("url")
        elif word == "year" and before in ("what", "which"):
            found.add("year")
        if word in _TIME_WORDS and after in ("of", "does", "do", "is", "are"):
            found.add("time")
        if word == "where" and any(w in _PLACE_WORDS for w in words[k + 1 : k + 6]):
            found.add("address")
    return frozenset(found)


def _types(text: str) -> frozenset[AnswerType]:
    """The kinds of fact a text holds, read from its tokens."""
    lower = text.lower()
    tokens = _TOKEN.findall(lower)
    found: set[AnswerType] = set()
    if "@" in tokens:
        found.add("email")
    if "www." in lower or "http" in lower:
        found.add("url")
    if any(t in _STREET_WORDS for t in tokens) and any(t[:1].isdigit() for t in tokens):
        found.add("address")
    for k, token in enumerate(tokens):
        after = tokens[k + 1] if k + 1 < len(tokens) else ""
        numeric = token[:1].isdigit() or token[:1] in "£$€+"
        if not numeric and token not in _NUMBER_WORDS:
            continue
        digits = sum(ch.isdigit() for ch in token)
        if numeric and not digits:
            continue
        found.add("number")
        if token[:1] in "£$€" or after in _CURRENCY_WORDS:
            found.add("money")
        if (
            token.endswith("%")
            or after == "percent"
            or (after == "per" and tokens[k + 2 : k + 3] == ["cent"])
        ):
            found.add("percent")
        if (":" in token and "/" not in token) or after in ("am", "pm"):
            found.add("time")
        unit = tokens[k + 2] if after in _DURATION_FILLERS and k + 2 < len(tokens) else after
        if unit in _DURATION_UNITS or token == "24/7":
            found.add("duration")
        if len(token) == 4 and token.isdigit() and 1900 <= int(token) <= 2100:
            found.add("year")
        if token[:1] in "+0" and digits >= 2:
            run = digits + sum(
                sum(ch.isdigit() for ch in t) for t in tokens[k + 1 : k + 4] if t[:1].isdigit()
            )
            if run >= 9:
                found.add("phone")
    return frozenset(found)
