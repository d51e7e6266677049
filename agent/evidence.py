"""What a small model is shown, and what its answer must keep.

A small local model (SmolLM2-135M) answers well only when the answer is in front of it: given whole
passages it wanders, drops the figure asked for, or repeats the wrong part. So it is shown the sentences of
the passages that bear on the question (the ones the extractive answer would quote, chosen by the same
scoring), and its answer may only rephrase them:

- each sentence must be made mostly of the words of what it was shown (`rephrased`): a sentence of its own
  ("No, we do not allow parking for people who drive over.") states a policy no checkable fact betrays;
- every checkable fact of the opening evidence (a price, a name, a duration) that the visitor did not
  already say must be in it (`left_out`): an answer that drops one tells the visitor less than the
  extractive answer would.

An answer that fails either gives way to the next tier (the extractive one at worst).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

from agent.facts import Evidence, Fact, checkable_facts
from agent.generators.extractive import content_terms, opening, select_sentences
from agent.grounding import sentences as split_sentences
from agent.prompting import Prompt

_LOWER_WORD = re.compile(r"(?<![\w'\u2019-])[a-z][a-z'\u2019-]*")
# A sentence of a small model's answer is its evidence rephrased when at least this share of its content
# words are the evidence's (or the question's). Measured on SmolLM2-135M answers: sentences that rephrase
# score 0.8 to 1.0, sentences of its own 0 to 0.6.
REPHRASED_SHARE = 0.7
_ENDS = frozenset(".!?:;")
_OPENING_LIMIT = 4  # units: a list's lead and the items it introduces, as the extractive answer shows them


def focus(prompt: Prompt, sentences: int) -> Prompt | None:
    """`prompt` with each passage cut to its sentences that bear on the question, `sentences` of them at
    most (a list the answer opens with comes whole), the best passage first; None when no sentence does.
    `sentences` 0: the prompt as it is."""
    if sentences <= 0:
        return prompt
    groups = _groups(prompt, sentences)
    if not groups:
        return None
    passages = tuple(
        dataclasses.replace(prompt.passages[rank], text=_joined(units)) for rank, units in groups
    )
    return dataclasses.replace(prompt, passages=passages)


def rephrased(prompt: Prompt, answer: str) -> str:
    """The answer's leading sentences that rephrase `prompt`'s passages (its titles, the question and the
    conversation count too), up to the first that does not; "" when the first does not."""
    given = content_terms(
        "\n".join(
            [
                prompt.question,
                *(f"{p.title}\n{p.headings}\n{p.text}" for p in prompt.passages),
                *(t for turn in prompt.history for t in (turn.question, turn.answer)),
            ]
        )
    )
    kept: list[str] = []
    for sentence in split_sentences(answer):
        terms = content_terms(sentence)
        if terms and len(terms & given) < REPHRASED_SHARE * len(terms):
            break
        kept.append(sentence)
    return "".join(kept).rstrip()


def left_out(prompt: Prompt, answer: str) -> list[Fact]:
    """The facts of the passages' opening evidence that `answer` does not state, leaving out those the
    visitor already has (in the question or the conversation) and names most passages share (the
    company's own name says nothing about this answer)."""
    previous = prompt.history[-1].question if prompt.history else ""
    evidence = opening(prompt.question, prompt.passages, _OPENING_LIMIT, previous).replace("**", "")
    if not evidence:
        return []
    known = Evidence([prompt.question, *(t for turn in prompt.history for t in (turn.question, turn.answer))])
    common = _common_names(prompt)
    words = _lower_words(prompt)
    said = Evidence([answer])
    return [
        fact
        for fact in checkable_facts(evidence)
        if not known.supports(fact)
        and fact.key not in common
        and not (fact.kind == "name" and _ordinary_word(fact, evidence, words))
        and not said.supports(fact)
    ]


def _ordinary_word(fact: Fact, evidence: str, lower: set[str]) -> bool:
    """A one-word "name" that is an ordinary word: capitalised only where any word is (a sentence's, a
    line's or a table cell's first word: "Typical projects...") and written in lower case elsewhere in the
    passages, or a label ("Price: £95", a table row read out). "The Growth package", "Package: Growth" and
    "- Klarna" stay names."""
    word = fact.key.removeprefix("name:")
    if " " in word:
        return False
    name = re.escape(fact.text)
    if re.search(rf"(?<=[\w,;:)] ){name}\b(?!:)", evidence):  # mid-sentence, or a label's value
        return False
    return word in lower or re.search(rf"\b{name}:", evidence) is not None


def _joined(units: list[str]) -> str:
    """Units as one text, each ending as a sentence: list items and table rows run together would read as
    one long name ("Stripe Klarna Mollie")."""
    return " ".join(unit if unit.rstrip()[-1:] in _ENDS else f"{unit.rstrip()}." for unit in units)


def _groups(prompt: Prompt, limit: int) -> list[tuple[int, list[str]]]:
    previous = prompt.history[-1].question if prompt.history else ""
    return select_sentences(prompt.question, prompt.passages, limit, previous)


def _lower_words(prompt: Prompt) -> set[str]:
    """The words the passages also write in lower case: a capitalised one ("Price" heading a table column,
    "Typical" opening a sentence) is an ordinary word there, not a name the answer must repeat."""
    return {word for passage in prompt.passages for word in _LOWER_WORD.findall(passage.text)}


def _common_names(prompt: Prompt) -> set[str]:
    """Names in more than half of the passages."""
    if len(prompt.passages) < 2:
        return set()
    counts = Counter(
        key
        for passage in prompt.passages
        for key in {f.key for f in checkable_facts(passage.text) if f.kind == "name"}
    )
    return {key for key, count in counts.items() if count * 2 > len(prompt.passages)}
