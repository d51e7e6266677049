"""The extractive tier's sentence choice, and settings that refuse bad values."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from agent.errors import FallThroughError
from agent.generators.extractive import ExtractiveGenerator, select_sentences
from agent.prompting import Prompt
from api.settings import ApiSettings
from rag.retriever import Passage
from rag.settings import RagSettings

PASSAGES = (
    Passage(
        "a",
        "contact.md",
        "Contact Us",
        "Support Hours",
        "Our team is friendly. The support line is open Monday to Friday, 8:30 to 18:00 UK time. "
        "Parking is available nearby.",
        0.62,
    ),
    Passage(
        "b",
        "faq.md",
        "FAQ",
        "Emergencies",
        "Emergency support is available 24/7 for Care Plus clients. Other clients wait for office hours.",
        0.55,
    ),
)


def test_opens_with_the_sentence_that_answers() -> None:
    text = asyncio.run(
        ExtractiveGenerator(max_sentences=2).generate(
            Prompt("When is the support line open?", PASSAGES), timeout=5
        )
    )
    assert text.startswith("The support line is open Monday to Friday, 8:30 to 18:00 UK time.")
    assert "Parking" not in text and "friendly" not in text
    assert "Source" not in text  # sources travel as structured data beside the answer


def test_the_best_passage_comes_first_and_reads_in_its_own_order() -> None:
    groups = select_sentences("support hours for emergencies", PASSAGES, limit=3)
    emergencies = [
        "Emergency support is available 24/7 for Care Plus clients.",
        "Other clients wait for office hours.",
    ]
    assert groups[0] == (1, emergencies)
    assert groups[1:] == [(0, ["The support line is open Monday to Friday, 8:30 to 18:00 UK time."])]


def test_a_heading_the_sentence_does_not_name_labels_it() -> None:
    text = asyncio.run(
        ExtractiveGenerator().generate(
            Prompt("What are the support hours for emergencies?", PASSAGES), timeout=5
        )
    )
    assert "**Support Hours**: The support line is open" in text


def test_nothing_to_extract_falls_through() -> None:
    with pytest.raises(FallThroughError):
        asyncio.run(ExtractiveGenerator().generate(Prompt("anything?", ()), timeout=5))


def test_bad_rate_limit_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="rate limit"):
        ApiSettings(_env_file=None, rate_limit_chat="twenty a minute")


def test_overlap_must_be_smaller_than_half_a_chunk() -> None:
    with pytest.raises(ValidationError, match="CHUNK_OVERLAP"):
        RagSettings(_env_file=None, chunk_size=400, chunk_overlap=300)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_CHAT", "7/minute")
    monkeypatch.setenv("CACHE_TTL", "120")
    monkeypatch.setenv("TOP_K", "6")
    assert ApiSettings(_env_file=None).rate_limit_chat == "7/minute"
    assert ApiSettings(_env_file=None).cache_ttl == 120
    assert RagSettings(_env_file=None).top_k == 6
