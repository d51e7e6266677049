"""A question the knowledge cannot answer gets "I don't know" and the contact details; small talk gets
small talk. Both without a model call, through the real app, store and embedder."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.smalltalk import recognise
from fakes.gemini_server import FakeGemini
from tests.conftest import AppFactory
from tests.test_streaming import check_shape, stream

OFF_TOPIC = [
    "Can you give me a recipe for lasagna?",
    "Write me a poem about cats",
    "How do I fix the brakes on my car?",
]
CONTACT = "Call us on 0117 496 0000 or write to hello@example.com."


def gemini_client(make_client: AppFactory, gemini: FakeGemini, **agent: Any) -> TestClient:
    settings = {
        "llm_chain": "gemini,extractive",
        "google_api_key": "gem-key",
        "gemini_base_url": gemini.url,
        "contact_hint": CONTACT,
        **agent,
    }
    return make_client(agent=settings)


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_an_unanswerable_question_gets_i_dont_know_and_the_contact_details(
    make_client: AppFactory, fake_gemini: FakeGemini, question: str
) -> None:
    client = gemini_client(make_client, fake_gemini)

    body = client.post("/chat", json={"message": question}).json()

    assert body["status"] == "success" and body["sources"] == []
    assert body["response"] == f"Sorry, I couldn't find anything about that in our information. {CONTACT}"
    assert body["model_info"]["provider"] == "none" and body["model_info"]["model"] == "no-match"
    assert fake_gemini.calls == 0  # no model was given the chance to invent an answer


def test_a_question_the_knowledge_answers_is_not_held_back(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    client = gemini_client(make_client, fake_gemini)
    for question in ("How much does a website cost?", "Do u do SEO", "Where is your office?"):
        body = client.post("/chat", json={"message": question}).json()
        assert body["sources"] and body["model_info"]["provider"] == "gemini", question
    assert fake_gemini.calls == 3


def test_the_no_answer_text_and_the_floor_are_settings(make_client: AppFactory) -> None:
    client = make_client(
        agent={"no_answer_text": "That is not something we know about.", "contact_hint": CONTACT}
    )
    body = client.post("/chat", json={"message": OFF_TOPIC[0]}).json()
    assert body["response"] == f"That is not something we know about. {CONTACT}"

    # The floor alone decides once the calibrated check is off: every passage passes a floor of 0.
    unchecked = make_client(agent={"relevance_floor": 0.0, "relevance_check": False})
    unchecked.post("/chat", json={"message": OFF_TOPIC[0]})
    # Its passages went to the generator chain.
    assert unchecked.get("/stats/llm").json()["tiers"]["extractive"]["attempts"] == 1
    # And the floor is a hard minimum with the check on: nothing reaches a floor of 1.
    strict = make_client(agent={"relevance_floor": 1.0})
    body = strict.post("/chat", json={"message": "Where is your office?"}).json()
    assert body["sources"] == [] and body["model_info"]["model"] == "no-match"


def test_a_streamed_unanswerable_question_ends_with_the_same_answer(make_client: AppFactory) -> None:
    client = make_client(agent={"contact_hint": CONTACT})
    sources, text, done = check_shape(stream(client, {"message": OFF_TOPIC[1]})[0])
    assert sources == [] and text.endswith(CONTACT)
    assert done["status"] == "success" and done["model_info"]["model"] == "no-match"


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Hi!", "greeting"),
        ("hello there", "greeting"),
        ("Good morning :)", "greeting"),
        ("Thanks!", "thanks"),
        ("thank you so much", "thanks"),
        ("ok, thanks", "thanks"),
        ("Bye", "goodbye"),
        ("see you later", "goodbye"),
        ("Who are you?", "identity"),
        ("Are you a bot?", "identity"),
        ("Hi, who are you?", "identity"),
        ("What can you do?", "identity"),
        ("How are you today?", "wellbeing"),
        ("got it", "acknowledgement"),
        ("hi, what are your prices?", None),
        ("Thanks, how much is the Growth package?", None),
        ("hello, do you do SEO?", None),
        ("What time do you open?", None),
        ("hello there, what do you do?", None),
        ("Who are your clients?", None),
        ("thanks for the quote, can we start in May?", None),
    ],
)
def test_small_talk_is_recognised_only_when_the_message_is_nothing_else(
    message: str, kind: str | None
) -> None:
    assert recognise(message) == kind


def test_small_talk_is_answered_without_a_lookup_or_a_model(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    client = gemini_client(
        make_client, fake_gemini, assistant_intro="I'm Ada, the assistant of Bristol Web Co."
    )
    embedder = client.app.state.services.embedder  # type: ignore[attr-defined]
    embedded_before = embedder.calls

    greeting = client.post("/chat", json={"message": "Hello!"}).json()
    identity = client.post("/chat", json={"message": "who are you?"}).json()
    thanks = client.post("/chat", json={"message": "Thanks a lot!"}).json()

    assert greeting["response"] == "Hello! How can I help you today?"
    assert identity["response"] == "I'm Ada, the assistant of Bristol Web Co."
    assert thanks["response"].startswith("You're welcome")
    for body in (greeting, identity, thanks):
        assert body["status"] == "success" and body["sources"] == []
        assert body["model_info"]["model"] == "small-talk"
        assert "couldn't find" not in body["response"]
    assert embedder.calls == embedded_before and fake_gemini.calls == 0

    sources, text, done = check_shape(stream(client, {"message": "hey there"})[0])
    assert (sources, text, done["model_info"]["model"]) == (
        [],
        "Hello! How can I help you today?",
        "small-talk",
    )


def test_small_talk_can_be_turned_off(make_client: AppFactory) -> None:
    body = make_client(agent={"small_talk": False}).post("/chat", json={"message": "Hello!"}).json()
    assert body["model_info"]["model"] != "small-talk"
