"""The grounding guard: no fact a visitor could act on reaches them unless what the model was given says it.

A model's answer is released sentence by sentence. Each sentence is cleaned of prompt markup the model may
echo (`</conversation>`, `<document index="2" ...>`, `&gt;`, citation marks such as `[2]`) and, with the
guard on, its checkable facts (prices, numbers, dates, times, e-mail addresses, phone numbers, URLs, names:
see `agent.facts`) are checked against the evidence: the retrieved passages with their titles and headings,
the question, the conversation and the owner's own fixed texts (the contact hint). The answer is its longest
run of grounded sentences from the start: when the first sentence already invents, nothing is shown and the
chain goes on to the next tier (`Ungrounded`); when a later one does, the answer ends before it.

The same gate serves a plain answer (fed whole, then flushed) and a stream (fed piece by piece): one rule,
whichever way the visitor asked.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import structlog

from agent.errors import FallThroughError
from agent.facts import Evidence, Fact
from agent.generators.extractive import asks_for, holds
from agent.prompting import Prompt

log = structlog.get_logger(__name__)

Grounding = Literal["strict", "off"]

# Every pattern here runs on model output in linear time: bounded repeats, no nested quantifiers.
# Where a sentence ends: after . ! or ? (and closing quotes or brackets) and a space, or at a line break.
_BOUNDARY = re.compile(r"[.!?][\"')\]\u2019\u201d]{0,3}[ \t]+|\n")
_LETTER = re.compile(r"[^\W\d_]")
# Our prompt's own delimiters, whole or cut off at the end of a line, in any case, perhaps escaped.
_PROMPT_TAG = re.compile(
    r"(?:<|&lt;)/?(?:documents?|question|conversation)\b[^<>\n]{0,300}(?:>|&gt;|$)",
    re.IGNORECASE | re.MULTILINE,
)
# Citation marks pointing into the prompt's numbered passages ("[2]", "[1, 3]", "[Document 2]"): the sources
# are shown beside the answer, and a bare passage number is no fact of the knowledge.
_CITATION = re.compile(
    r"[ \t]?\[(?:(?:document|doc|passage|source) ?)?\d{1,2}(?:, ?\d{1,2}){0,9}\]", re.IGNORECASE
)
_SPACES = re.compile(r"[ \t]{2,}")
# A run-on answer without a sentence end is checked and shown in parts of about this many characters, at a
# space: a visitor does not wait for the whole of it, nor does the gate hold an unbounded text.
_LONGEST_WAIT = 400


class Ungrounded(FallThroughError):
    """The answer's first sentence states something the evidence does not: nothing of it was shown."""

    def __init__(self, provider: str, facts: list[Fact]) -> None:
        super().__init__(
            f"{provider} answered with facts not in its sources: " + ", ".join(f.text for f in facts[:5]),
            reason="ungrounded",
        )
        self.facts = facts


def strip_markup(text: str) -> str:
    """`text` without our prompt's markup: delimiters, escaped characters and citation marks."""
    text, tags = _PROMPT_TAG.subn("", text)
    text = html.unescape(text) if "&" in text else text
    text, marks = _CITATION.subn("", text)
    return _SPACES.sub(" ", text) if tags or marks else text  # a gap where markup was, not indentation


@dataclass(frozen=True, slots=True)
class GroundingGuard:
    """`trusted`: texts the owner wrote whose facts an answer may repeat (the contact hint)."""

    mode: Grounding = "strict"
    trusted: tuple[str, ...] = ()

    def gate(self, prompt: Prompt, provider: str, *, check: bool = True) -> SentenceGate:
        """A gate for one answer to `prompt`. `check=False` only cleans markup: for a tier that copies its
        sentences from the passages and so cannot invent."""
        evidence = _evidence(prompt, self.trusted) if check and self.mode == "strict" else None
        return SentenceGate(provider, evidence)


@dataclass(slots=True)
class SentenceGate:
    """Takes an answer in pieces, gives back what may be shown, whole sentences at a time."""

    provider: str
    evidence: Evidence | None
    released: bool = False  # some text was given out
    closed: bool = False  # an invented fact ended the answer: whatever else comes is dropped
    dropped: list[Fact] = field(default_factory=list)  # the unsupported facts that ended it
    _pending: str = ""

    def feed(self, piece: str) -> str:
        """What of the answer so far can be shown now. Raises `Ungrounded` when the first sentence invents."""
        if self.closed:
            return ""
        self._pending += piece
        end = _last_boundary(self._pending)
        if end == 0 and len(self._pending) > _LONGEST_WAIT:
            end = _last_space(self._pending)
        if end == 0:
            return ""
        ready, self._pending = self._pending[:end], self._pending[end:]
        return self._pass(ready)

    def flush(self) -> str:
        """The rest, once the answer is complete."""
        if self.closed:
            return ""
        ready, self._pending = self._pending, ""
        return self._pass(ready)

    def _pass(self, text: str) -> str:
        shown: list[str] = []
        for sentence in sentences(text):
            clean = strip_markup(sentence)
            invented = self.evidence.unsupported(clean) if self.evidence is not None else []
            if invented:
                self.closed, self.dropped = True, invented
                if not self.released and not shown:
                    raise Ungrounded(self.provider, invented)
                log.warning("answer_cut_ungrounded", tier=self.provider, facts=[f.text for f in invented[:5]])
                break
            shown.append(clean)
        out = "".join(shown)
        if not self.released:
            out = out.lstrip()
        self.released = self.released or bool(out)
        return out


def answers_kind(question: str, answer: str) -> bool:
    """Whether `answer` states a fact of the kind `question` asks for, when it asks for one: "How much is
    the Growth package?" is not answered by "It is a great choice for growing businesses." A small model
    often answers so, grounded and empty, where the extractive tier would quote the price."""
    wanted = asks_for(question)
    return not wanted or bool(wanted & holds(answer))


def _evidence(prompt: Prompt, trusted: Iterable[str]) -> Evidence:
    texts = [f"{p.title}\n{p.headings}\n{p.text}" for p in prompt.passages]
    texts.append(prompt.question)
    for turn in prompt.history:
        texts += [turn.question, turn.answer]
    return Evidence([*texts, *trusted])


def _last_boundary(text: str) -> int:
    """Where the last complete sentence of `text` ends; 0 when none has. A full stop is an end only once
    a space follows it: until then it may be a decimal point ("£12." then "50")."""
    end = 0
    for match in _BOUNDARY.finditer(text):
        if _LETTER.search(text, end, match.start()):
            end = match.end()
    return end


def _last_space(text: str) -> int:
    return max(text.rfind(" "), text.rfind("\t")) + 1


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence end, keeping every character. A piece without a letter ("1." of a
    numbered list, "£12,500.") stays with the sentence after it, so that it is read in its context."""
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if _LETTER.search(text, start, match.start()):
            pieces.append(text[start : match.end()])
            start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces
