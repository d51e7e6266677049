"""Recognising a visitor who asks for a person, and only that: a question about something stays a question."""

from __future__ import annotations

import pytest

from agent.handoff import asks_for_person

ASKS = [
    "Can I talk to a human?",
    "can i speak to someone",
    "I want to speak to a real person",
    "I'd like to talk to someone from your team",
    "Could I chat with an agent please?",
    "human please",
    "Real person!",
    "Operator",
    "Hi, can I talk to a person?",
    "connect me with customer service",
    "Is there a human I can talk to?",
    "I need a human",
    "get me a representative",
    "Let me speak to your sales team",
    "How can I contact a person?",
    "Quiero hablar con una persona",
    "Je voudrais parler à un humain",
    "Ich möchte mit einem Menschen sprechen",
]
QUESTIONS = [
    "Are you a human?",  # who the bot is: small talk, not a request
    "Can I talk to someone about a refund for order 1234?",
    "How do I contact you?",
    "What are your opening hours?",
    "Do you have a person on site for installations?",
    "human resources policy",
    "Which agent handles Linux hosting?",
    "",
    "talk to a human " * 10,
]


@pytest.mark.parametrize("message", ASKS)
def test_asking_for_a_person_is_recognised(message: str) -> None:
    assert asks_for_person(message)


@pytest.mark.parametrize("message", QUESTIONS)
def test_questions_are_not_taken_for_it(message: str) -> None:
    assert not asks_for_person(message)
