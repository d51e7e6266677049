"""The extractive answer, the voice of every deployment without a model: it opens with the sentence that
answers, adds only sentences that bear on the question, keeps list items, headings and table rows apart,
and holds no fact that its passages do not. Every text here is made up for these tests."""

from __future__ import annotations

import asyncio

import pytest

from agent.conversations import Turn
from agent.errors import FallThroughError
from agent.facts import unsupported
from agent.generators.extractive import ExtractiveGenerator, select_sentences
from agent.prompting import Prompt
from rag.retriever import Passage

TEAM = Passage(
    "team-1",
    "team.md",
    "Our Team",
    "Leadership",
    "Brightwater Labs is a team of 25 engineers, designers and support staff based in Leeds.\n\n"
    "Maya Patel is our Chief Executive Officer. She founded Brightwater Labs in 2016 after ten years "
    "running operations at a logistics firm.\n\n"
    "Daniel Osei is our Chief Technology Officer and leads the platform team.",
    0.41,
)
PARKING = Passage(
    "visit-1",
    "visit.md",
    "Visiting Us",
    "Parking",
    "Visitors can park in the Mill Street car park, a five-minute walk from reception. Bicycles can be "
    "left in the courtyard.",
    0.38,
)
PRICING = Passage(
    "pricing-1",
    "pricing.md",
    "Pricing",
    "Plans",
    "We keep pricing simple. Choose one of our plans:\n\n"
    "- **Solo**: £19 per month for one user\n"
    "- **Team**: £49 per month for up to ten users\n"
    "- **Business**: £199 per month with [single sign-on](https://example.test/sso)\n\n"
    "Annual billing saves 15% on any plan.",
    0.52,
)
ONBOARDING = Passage(
    "faq-3",
    "faq.md",
    "FAQ",
    "Getting Started > What do I need to send before we start?",
    "Please send us:\n\n"
    "1. Your logo as an SVG file\n"
    "2. Your brand colours and fonts\n"
    "3. A login for your current hosting\n"
    "4. Any copy you already have",
    0.47,
)
SUPPORT_TABLE = Passage(
    "support-2",
    "support.md",
    "Support",
    "Response times",
    "Every ticket gets a priority when it is raised.\n\n"
    "| Priority | Example | First reply | Fix within |\n"
    "|---|---|---|---|\n"
    "| Urgent | Checkout is down | 30 minutes | 4 hours |\n"
    "| Normal | A broken link | 1 working day | 5 working days |",
    0.44,
)
HISTORY = Passage(
    "history-2",
    "history.md",
    "Our Story",
    "Milestones > 2019",
    "- Opened our second studio, in York\n- Hired our twentieth employee",
    0.36,
)


def answer(question: str, *passages: Passage, limit: int = 4, history: tuple[Turn, ...] = ()) -> str:
    return asyncio.run(
        ExtractiveGenerator(limit).generate(Prompt(question, passages, history=history), timeout=5)
    )


def assert_grounded(text: str, question: str, *passages: Passage) -> None:
    evidence = [f"{p.title}\n{p.headings}\n{p.text}" for p in passages] + [question]
    assert unsupported(text, evidence) == [], text


def test_who_is_the_ceo_opens_with_the_ceos_sentence() -> None:
    text = answer("Who is the CEO?", PARKING, TEAM)
    assert text.startswith("Maya Patel is our Chief Executive Officer.")
    assert "Here is what I found" not in text
    assert_grounded(text, "Who is the CEO?", PARKING, TEAM)


def test_a_passage_that_shares_nothing_with_the_question_gives_nothing() -> None:
    text = answer("Who is the CEO?", PARKING, TEAM)
    assert "park" not in text.lower() and "Bicycles" not in text


def test_supporting_sentences_bear_on_the_question() -> None:
    text = answer("Who runs the platform team?", TEAM, PARKING)
    assert text.startswith("Daniel Osei is our Chief Technology Officer and leads the platform team.")
    assert "Maya Patel" not in text and "Mill Street" not in text


def test_a_sentence_that_says_she_comes_with_the_one_that_says_who_she_is() -> None:
    text = answer("Who founded Brightwater Labs?", TEAM, PARKING)
    assert text.startswith(
        "Maya Patel is our Chief Executive Officer. She founded Brightwater Labs in 2016 after ten years"
    )
    assert "Daniel Osei" not in text  # nothing of the question in it
    assert "Mill Street" not in text


def test_list_items_are_never_glued_together() -> None:
    text = answer("How much is the Team plan per month?", PRICING)
    assert "£49 per month for up to ten users" in text
    for line in text.split("\n"):
        assert sum(plan in line for plan in ("Solo:", "Team:", "Business:")) <= 1, line
    assert_grounded(text, "How much is the Team plan per month?", PRICING)


def test_markdown_emphasis_links_and_markers_are_stripped() -> None:
    text = answer("Which plan has single sign-on?", PRICING)
    assert "Business: £199 per month with single sign-on" in text
    assert "**" not in text and "](" not in text and "https://" not in text


def test_a_sentence_that_introduces_a_list_answers_with_its_items() -> None:
    question = "What do I need to send before we start?"
    text = answer(question, ONBOARDING, PARKING)
    lines = text.split("\n")
    assert "Please send us:" in lines[0]
    assert lines[1:4] == [
        "- Your logo as an SVG file",
        "- Your brand colours and fonts",
        "- A login for your current hosting",
    ]  # at most `max_sentences` units: the introduction and three items
    assert_grounded(text, question, ONBOARDING, PARKING)


def test_a_table_row_is_one_unit_named_by_its_header() -> None:
    question = "How quickly do you fix an urgent ticket?"
    text = answer(question, SUPPORT_TABLE)
    assert "Priority: Urgent; Example: Checkout is down; First reply: 30 minutes; Fix within: 4 hours" in text
    assert "Normal" not in text.split("\n")[0]
    assert_grounded(text, question, SUPPORT_TABLE)


def test_a_heading_that_holds_the_answer_labels_the_sentence() -> None:
    question = "When did you open the York studio?"
    text = answer(question, HISTORY, TEAM)
    assert text.startswith("**2019**: Opened our second studio, in York")
    assert "twentieth" not in text


def test_sentences_of_one_passage_keep_their_order_and_duplicates_are_dropped() -> None:
    first = Passage(
        "p-1",
        "care.md",
        "Care",
        "Backups",
        "We back up every site daily. Backups are kept for 30 days. Restores are free of charge.",
        0.5,
    )
    overlap = Passage("p-2", "care.md", "Care", "Backups", "Backups are kept for 30 days.", 0.45)
    groups = select_sentences("How long are backups kept, and are restores free?", (first, overlap), 4)
    assert groups == [(0, ["Backups are kept for 30 days.", "Restores are free of charge."])]


def test_a_follow_up_is_read_with_the_question_before() -> None:
    history = (Turn("How much is the Team plan?", "£49 per month for up to ten users"),)
    text = answer("and how many users does it cover?", PRICING, history=history)
    assert text.startswith("Team: £49 per month for up to ten users")


def test_no_more_than_max_sentences() -> None:
    for limit in (1, 2, 4):
        groups = select_sentences("What does each plan cost per month?", (PRICING, ONBOARDING, TEAM), limit)
        assert 1 <= sum(len(sentences) for _, sentences in groups) <= limit
    assert answer("What does each plan cost per month?", PRICING, limit=1).count("£") == 1


def test_stripped_markup_never_makes_a_fact_the_passage_lacks() -> None:
    # Without its markers the number would run on into "(24", a longer number the passage does not hold.
    passage = Passage(
        "c-1",
        "contact.md",
        "Contact",
        "Emergencies",
        "- Emergency line: **0113 496 0000** (24 hours a day)\n- Office line: 0113 496 0001",
        0.5,
    )
    question = "What is the emergency line number?"
    text = answer(question, passage)
    assert "0113 496 0000" in text
    assert_grounded(text, question, passage)


def test_a_wrapped_line_goes_on_but_an_unmarked_list_stays_apart() -> None:
    passage = Passage(
        "s-1",
        "studio.md",
        "Studio",
        "Facilities",
        "Our studio opens at 9:00 and\ncloses at 17:30 on weekdays.\nBike storage for 12 bikes\n"
        "Showers on every floor",
        0.5,
    )
    text = answer("When does the studio close?", passage)
    assert text.startswith("Our studio opens at 9:00 and closes at 17:30 on weekdays.")
    assert "weekdays. Bike" not in text and "bikes Showers" not in text
    assert_grounded(text, "When does the studio close?", passage)


def test_a_short_reply_is_kept_with_the_sentence_it_answers() -> None:
    passage = Passage(
        "faq-9",
        "faq.md",
        "FAQ",
        "Can I import my data?",
        "Yes. We import from Xero, QuickBooks and Sage in under an hour.",
        0.5,
    )
    text = answer("Can I import data from Sage?", passage)
    # Under the FAQ's own question, which says what "Yes" answers.
    assert (
        text == "**Can I import my data?**: Yes. We import from Xero, QuickBooks and Sage in under an hour."
    )


def test_nothing_that_bears_on_the_question_falls_through() -> None:
    with pytest.raises(FallThroughError):
        answer("Do you sell garden furniture?", PARKING, TEAM)


@pytest.mark.parametrize(
    "question",
    [
        "Who is the CEO?",
        "How much is the Solo plan?",
        "What do I need to send before we start?",
        "How fast is the first reply to a normal ticket?",
        "When did you hire your twentieth employee?",
        "Is there a discount for paying annually?",
    ],
)
def test_every_fact_of_an_answer_is_in_its_passages(question: str) -> None:
    passages = (TEAM, PRICING, ONBOARDING, SUPPORT_TABLE, HISTORY, PARKING)
    assert_grounded(answer(question, *passages), question, *passages)


def test_who_is_in_charge_asks_for_a_person_not_a_price() -> None:
    support = Passage(
        "support-1",
        "support.md",
        "Support",
        "",
        "Our help desk, led by Ines Duarte, answers every ticket within a day.\n\n"
        "Extra work is charged at £80 per hour.",
        0.4,
    )
    text = answer("Who is in charge of your help desk?", support)
    assert text.startswith("Our help desk, led by Ines Duarte")
    assert "£80" not in text


def test_a_list_the_answer_opens_with_is_shown_whole() -> None:
    bugs = Passage(
        "bugs-1",
        "bugs.md",
        "Reporting a bug",
        "",
        "When you report a bug, please include:\n\n- The page address\n- What you expected\n"
        "- The steps to reproduce it\n- Your browser and device\n- A screenshot, if you can",
        0.4,
    )
    text = answer("What should I include when I report a bug?", bugs)
    for item in ("The page address", "What you expected", "The steps", "Your browser", "A screenshot"):
        assert item in text
