"""`GET /widget/config`: what the embedded widget offers besides chatting (starter questions, the contact
form), read cross-origin by the pages that embed it."""

from __future__ import annotations

import pytest

from api.settings import ApiSettings
from tests.conftest import NO_ENV_FILE, AppFactory

SHOP = "https://shop.example.com"
STARTERS = ["What are your prices?", "Do you ship abroad?"]


def test_starters_come_from_the_settings_and_leads_follow_the_records(make_client: AppFactory) -> None:
    client = make_client(api={"starter_questions": [*STARTERS, "   "]})
    response = client.get("/widget/config")
    assert response.status_code == 200
    assert response.json() == {"starters": STARTERS, "leads": True}  # the blank entry is no question
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=60"


def test_no_records_means_no_contact_form(make_client: AppFactory) -> None:
    client = make_client(records={"record_answers": False})
    assert client.get("/widget/config").json() == {"starters": [], "leads": False}
    # What the widget would otherwise send there is refused: the config does not promise a form that fails.
    lead = {"name": "Ann", "email": "ann@example.com", "message": "Call me", "consent": True}
    assert client.post("/leads", json=lead).status_code == 404


def test_starter_questions_are_a_json_array_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARTER_QUESTIONS", '["What are your prices?", "Do you ship abroad?"]')
    assert ApiSettings(**NO_ENV_FILE).starter_questions == STARTERS
    monkeypatch.setenv("STARTER_QUESTIONS", "")
    assert ApiSettings(**NO_ENV_FILE).starter_questions == []


def test_allowed_origins_read_it_cross_origin_and_others_are_refused(make_client: AppFactory) -> None:
    client = make_client(api={"allowed_origins": SHOP, "starter_questions": STARTERS})
    allowed = client.get("/widget/config", headers={"Origin": SHOP})
    assert allowed.status_code == 200 and allowed.json()["starters"] == STARTERS
    assert allowed.headers["access-control-allow-origin"] == SHOP
    refused = client.get("/widget/config", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "This chatbot does not accept requests from https://evil.example."}
    assert "access-control-allow-origin" not in refused.headers


def test_it_spends_the_root_budget_and_not_the_questions(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_root": "2/minute", "rate_limit_chat": "1/minute"})
    first = client.get("/widget/config")
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining"] == "1"
    assert client.get("/").status_code == 200  # the same budget as the service's root
    over = client.get("/widget/config")
    assert over.status_code == 429 and "retry-after" in over.headers
    assert client.post("/chat", json={"message": "What services do you offer?"}).status_code == 200
