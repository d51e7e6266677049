"""What a small local model is shown (the sentences that bear on the question) and what its answer must
keep (every fact of the opening evidence the visitor does not already have). Texts are made up."""

from __future__ import annotations

from agent.conversations import Turn
from agent.evidence import focus, left_out, rephrased
from agent.generators.extractive import opening
from agent.prompting import Prompt
from rag.retriever import Passage

PRICING = Passage(
    "pricing-1",
    "pricing.md",
    "Pricing",
    "Packages",
    "Harbourline Studio builds websites for small firms. The Starter package costs £3,200 and includes "
    "five pages. The Scale package costs £9,800 and includes a shop. Every package is billed in two "
    "instalments.",
    0.5,
)
PAYMENTS = Passage(
    "pay-1",
    "payments.md",
    "Payments",
    "Providers",
    "Harbourline Studio sets up online payments for shops. We integrate these providers:\n\n"
    "- Stripe\n- Klarna\n- Mollie\n\nA typical setup takes two days.",
    0.4,
)
TEAM = Passage(
    "team-1",
    "team.md",
    "Team",
    "",
    "Harbourline Studio was founded in 2019. Tomas Varga leads design. Price questions go to our office.",
    0.3,
)


def prompt(question: str, *passages: Passage, history: tuple[Turn, ...] = ()) -> Prompt:
    return Prompt(question=question, passages=passages, history=history)


def test_the_small_model_sees_only_the_sentences_that_bear_on_the_question() -> None:
    shown = focus(prompt("How much is the Starter package?", PRICING, TEAM), 2)
    assert shown is not None
    texts = [p.text for p in shown.passages]
    assert any("£3,200" in t for t in texts)
    assert not any("founded" in t for t in texts)  # the team passage says nothing of prices
    assert sum(t.count(". ") + 1 for t in texts) <= 2
    assert shown.passages[0].title == "Pricing"  # a passage keeps its title for the label


def test_nothing_bears_on_the_question_gives_nothing_to_show() -> None:
    assert focus(prompt("Do you sell garden furniture?", PRICING), 4) is None


def test_zero_sentences_means_the_whole_passages() -> None:
    whole = prompt("How much is the Starter package?", PRICING, TEAM)
    assert focus(whole, 0) is whole


def test_an_answer_that_drops_the_price_leaves_it_out() -> None:
    asked = prompt("How much is the Starter package?", PRICING, TEAM)
    assert [f.text for f in left_out(asked, "It is our most popular choice.")] == ["£3,200", "five"]
    assert left_out(asked, "The Starter package is £3,200 with 5 pages.") == []


def test_a_lists_items_are_the_opening_evidence_of_its_lead() -> None:
    asked = prompt("Which payment providers can you integrate?", PAYMENTS)
    assert "Klarna" in opening(asked.question, asked.passages, 4)
    missing = [f.text for f in left_out(asked, "We integrate Stripe and Mollie.")]
    assert missing == ["Klarna"]


def test_what_the_visitor_already_said_and_the_shared_company_name_are_not_required() -> None:
    history = (Turn("Tell me about the Starter package", "The Starter package includes five pages."),)
    asked = prompt("And how much is it?", PRICING, PAYMENTS, TEAM, history=history)
    # "Harbourline Studio" is in every passage and "Starter" in the conversation: only the price matters.
    assert [f.text for f in left_out(asked, "Five pages.")] == ["£3,200"]


def test_capitalised_ordinary_words_are_not_names_to_repeat() -> None:
    table = Passage(
        "t-1",
        "plans.md",
        "Plans",
        "",
        "| Plan | Price |\n|---|---|\n| Basic | £95 a month |\n\nThe price includes hosting.",
        0.5,
    )
    asked = prompt("What does the Basic plan cost?", table)
    assert left_out(asked, "Basic costs £95 a month.") == []


def test_an_answer_ends_before_its_first_sentence_of_its_own() -> None:
    parking = Passage(
        "visit-1",
        "visit.md",
        "Visiting us",
        "Parking",
        "There is no on-site parking at our office. The nearest car park is on Quay Street.",
        0.4,
    )
    asked = prompt("Can I park at your office?", parking)
    copied = "There is no parking at our office. The nearest car park is on Quay Street."
    assert rephrased(asked, copied) == copied
    wandering = "There is no parking at our office. Visitors enjoy complimentary valet service downtown."
    assert rephrased(asked, wandering) == "There is no parking at our office."
    assert rephrased(asked, "We welcome drivers who bring permits from the council.") == ""


def test_a_name_read_out_of_a_table_row_must_be_kept() -> None:
    table = Passage(
        "t-2",
        "packages.md",
        "Packages",
        "",
        "| Package | Price |\n|---|---|\n| Growth | £12,500 |\n\nOur growth plans suit most firms.",
        0.5,
    )
    asked = prompt("What does your most popular package cost?", table)
    assert [f.text for f in left_out(asked, "It costs £12,500.")] == ["Growth"]


def test_the_heading_that_labels_the_opening_sentence_is_evidence_too() -> None:
    growth = Passage(
        "p-3",
        "pricing.md",
        "Pricing",
        "Website Packages > Growth - £12,500",
        "Our most popular package. It includes up to fifteen pages.",
        0.5,
    )
    asked = prompt("What does your most popular package cost?", growth)
    assert "£12,500" in opening(asked.question, asked.passages, 4)
    assert [f.text for f in left_out(asked, "Our most popular package costs £12,500.")] == ["Growth"]
    assert left_out(asked, "The Growth package is our most popular: £12,500.") == []
