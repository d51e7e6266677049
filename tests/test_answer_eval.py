"""The answer evaluation: its scoring on hand-made cases, and `python -m agent eval` end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.agent import Answer
from agent.conversations import Turn
from agent.evaluation import QAItem, QASetError, has_fact, judge, load_qa, parse_item, summarize
from rag.retriever import Passage
from tests.conftest import KNOWLEDGE, ROOT

NO_ANSWER = "Sorry, I couldn't find anything about that in our information."
CONTACT = "Call us on +44 117 496 0738."
PRICING = Passage(
    id="p1",
    source="pricing.md",
    title="Pricing",
    headings="Website Packages",
    text="The Growth package costs £12,500 and takes eight weeks. Support is 10% of the build price a year.",
    score=0.8,
)


def answer(
    text: str, *, provider: str = "gemini", model: str = "m", sources: tuple[Passage, ...] = (PRICING,)
) -> Answer:
    return Answer(
        text=text, status="success", provider=provider, model=model, response_time=0.1, sources=sources
    )


def item(question: str, *facts: str, scope: str = "in") -> QAItem:
    return parse_item(json.dumps({"q": question, "facts": list(facts), "scope": scope}))


@pytest.mark.parametrize(
    ("text", "fact", "found"),
    [
        ("It costs £12500.", "£12,500", True),
        ("It costs £12 500.", "£12,500", True),
        ("It costs £12,500.", "£12500", True),
        ("It takes 8 weeks.", "eight|8", True),
        ("It takes eight weeks.", "eight|8", True),
        ("It takes EIGHT weeks.", "eight|8", True),
        ("It costs £1,250.", "£12,500", False),
        ("It takes 18 weeks.", "eight", False),
        ("Sarah\u2019s team", "Sarah's team", True),
        ("It   costs\n£12,500", "costs £12,500", True),
    ],
)
def test_a_fact_is_found_whatever_its_spacing_case_or_separators(text: str, fact: str, found: bool) -> None:
    assert has_fact(text, fact.split("|")) is found


def test_an_answer_with_every_fact_is_correct_and_one_without_is_not() -> None:
    question = item("How much is the Growth package and how long does it take?", "£12,500", "eight|8")
    right = judge(question, answer("£12,500, delivered in 8 weeks."), no_answer=NO_ANSWER)
    assert right.correct is True and right.missing == () and right.invented == ()
    half = judge(question, answer("It costs £12,500."), no_answer=NO_ANSWER)
    assert half.correct is False and half.missing == ("eight|8",)


def test_an_in_scope_question_answered_with_i_dont_know_is_not_correct() -> None:
    question = item("What does the Growth package cost?", "Growth")  # a fact the apology repeats
    said = judge(question, answer(f"{NO_ANSWER} Growth?", provider="none", sources=()), no_answer=NO_ANSWER)
    assert said.correct is False


def test_out_of_scope_is_honest_only_with_the_no_answer_reply() -> None:
    question = item("Do you sell car insurance?", scope="out")
    honest = judge(
        question,
        answer(f"{NO_ANSWER} {CONTACT}", provider="none", model="no-match", sources=()),
        no_answer=NO_ANSWER,
        fixed=[CONTACT],
    )
    assert honest.honest is True and honest.correct is None and honest.invented == ()
    served = judge(question, answer("The Growth package costs £12,500."), no_answer=NO_ANSWER)
    assert served.honest is False


def test_facts_nothing_supports_are_invented_and_the_owners_own_words_are_not() -> None:
    question = item("How much is the Growth package?", "£12,500")
    invented = judge(
        question, answer("It costs £12,500, or £700 a month; call 0161 555 0199."), no_answer=NO_ANSWER
    )
    assert invented.correct is True  # right, and still inventing: both are counted
    assert any("700" in fact for fact in invented.invented)
    assert any("0161" in fact or "555" in fact for fact in invented.invented)
    # The contact hint is the owner's text, and the question and the conversation are evidence too.
    history = (Turn("Is it £9,000 for the Starter?", "The Starter package is £9,000."),)
    clean = judge(
        question,
        answer(f"£12,500, against £9,000 for the Starter. {CONTACT}"),
        no_answer=NO_ANSWER,
        history=history,
        fixed=[CONTACT],
    )
    assert clean.invented == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"q": "x", "facts": ["a"], "scope": "in", "extra": 1}', "unknown keys"),
        ('{"q": "", "facts": ["a"], "scope": "in"}', "'q'"),
        ('{"q": "x", "facts": ["a"], "scope": "maybe"}', "'scope'"),
        ('{"q": "x", "facts": [], "scope": "in"}', "at least one fact"),
        ('{"q": "x", "facts": ["a"], "scope": "out"}', "has no facts"),
        ('{"q": "x", "facts": [3], "scope": "in"}', "'facts'"),
        ('{"q": "x", "facts": ["a"], "scope": "in", "session": 5}', "'session'"),
    ],
)
def test_a_malformed_line_is_refused_with_its_number(line: str, message: str) -> None:
    with pytest.raises(QASetError, match=f"line 3: .*{re.escape(message)}"):
        parse_item(line, 3)


def test_alternatives_split_on_bars_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"q": "How long?", "facts": ["four | 4 "], "scope": "in", "session": "s"}\n\n')
    (loaded,) = load_qa(qa)
    assert loaded.facts == (("four", "4"),) and loaded.session == "s" and loaded.line == 1


def test_the_bundled_set_is_valid_with_out_of_scope_questions_and_follow_ups() -> None:
    items = load_qa(ROOT / "bench" / "qa" / "bundled.jsonl")
    assert len(items) >= 40
    assert sum(1 for i in items if i.scope == "out") >= 10
    assert any(i.session for i in items)


def run_eval(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG_LEVEL": "WARNING", "KNOWLEDGE_DIR": str(KNOWLEDGE), "GOOGLE_API_KEY": ""}
    return subprocess.run(
        [sys.executable, "-m", "agent", "eval", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_asks_through_the_agent_and_ends_with_the_figures(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        "\n".join(
            json.dumps(line)
            for line in [
                {"q": "Give me a recipe for lasagna", "facts": [], "scope": "out"},
                {"q": "Who are you?", "facts": ["assistant"], "scope": "in"},
                {"q": "How much is the Growth package?", "facts": ["a fact no answer holds"], "scope": "in"},
            ]
        )
    )
    done = run_eval(str(qa), "--chain", "extractive")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "== extractive: 3 questions"
    assert any(line.startswith("  wrong: line 3 (extractive)") for line in lines)
    assert re.fullmatch(
        r"correct=1/2 honest=1/1 invented=0 p50=\d+\.\d{3}s p95=\d+\.\d{3}s chain=extractive", lines[-1]
    ), lines[-1]
    assert "none:small-talk 1" in done.stdout and "none:no-match 1" in done.stdout


def test_a_broken_qa_set_is_one_line_and_exit_2(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"q": "x", "facts": [], "scope": "in"}\n')
    done = run_eval(str(qa))
    assert (
        done.returncode == 2
        and done.stderr.strip() == "error: line 1: an in-scope question needs at least one fact"
    )


def test_summaries_count_answers_that_invent_once_each() -> None:
    from agent.evaluation import Record, Verdict

    question = item("How much?", "£12,500")
    records = [
        Record(question, answer("£12,500"), Verdict(True, None), 0.2, 0.1),
        Record(question, answer("£1 or £2"), Verdict(False, None, ("£12,500",), ("£1", "£2")), 0.4, None),
    ]
    summary = summarize(records)
    assert (summary.correct, summary.in_scope, summary.invented) == (1, 2, 1)
    assert summary.p50 == 0.2 and summary.p95 == 0.4 and summary.tiers == {"gemini": 2}
