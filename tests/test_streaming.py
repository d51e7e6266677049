"""`POST /chat/stream`: Server-Sent Events in order, from every tier, through the real app and SDKs."""

from __future__ import annotations

import json
from typing import Any

from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from fakes.openai_server import FakeOpenAI
from tests.conftest import AppFactory

QUESTION = {"message": "What services do you offer?"}


def sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def stream(client: Any, body: dict[str, Any] = QUESTION) -> tuple[list[tuple[str, Any]], Any]:
    response = client.post("/chat/stream", json=body)
    assert response.status_code == 200
    return sse(response.text), response


def check_shape(events: list[tuple[str, Any]]) -> tuple[list[Any], str, dict[str, Any]]:
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"} and len(names) >= 3
    return events[0][1], "".join(data["text"] for name, data in events if name == "token"), events[-1][1]


def test_extractive_stream_order_headers_and_content(make_client: AppFactory) -> None:
    client = make_client()
    events, response = stream(client)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"

    sources, text, done = check_shape(events)
    assert sources[0]["source"] == "services.md" and set(sources[0]) == {"id", "title", "source", "score"}
    assert done["status"] == "success" and done["cached"] is False
    assert done["model_info"]["provider"] == "extractive"
    assert len([e for e in events if e[0] == "token"]) > 1  # in a few pieces
    # The same answer as the plain endpoint gives.
    assert text == client.post("/chat", json={**QUESTION, "use_cache": False}).json()["response"]


def test_a_cached_answer_replays_as_the_same_events(make_client: AppFactory) -> None:
    client = make_client()
    _, first_text, first_done = check_shape(stream(client)[0])
    events = stream(client, {"message": "WHAT services do you offer?"})[0]
    _, text, done = check_shape(events)
    assert text == first_text and done["cached"] is True and first_done["cached"] is False
    # /chat and /chat/stream share one cache.
    assert client.post("/chat", json=QUESTION).json()["cached"] is True


def test_gemini_streams_through_the_sdk(make_client: AppFactory, fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(text="We build websites. We build mobile apps. We build online shops."))
    client = make_client(agent={"google_api_key": "k", "gemini_base_url": fake_gemini.url})
    events, _ = stream(client)
    _, text, done = check_shape(events)
    assert text == "We build websites. We build mobile apps. We build online shops."
    assert len([e for e in events if e[0] == "token"]) >= 3
    assert done["model_info"]["provider"] == "gemini"
    assert ":streamGenerateContent" in fake_gemini.requests[0].path


def test_a_tier_failing_before_its_first_token_falls_through_in_the_same_stream(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    fake_gemini.reset(default=Reply(status=503))
    fake_openai.reset(default=Reply(text="The model server answers instead."))
    client = make_client(
        agent={
            "llm_chain": "gemini,openai,extractive",
            "google_api_key": "k",
            "gemini_base_url": fake_gemini.url,
            "openai_base_url": fake_openai.base_url,
            "openai_model": "m",
            "max_retries": 1,
        }
    )
    _, text, done = check_shape(stream(client)[0])
    assert text == "The model server answers instead." and done["model_info"]["provider"] == "openai"
    assert fake_gemini.calls == 2 and fake_openai.requests[0].body["stream"] is True
    stats = client.get("/stats/llm").json()["tiers"]
    assert stats["gemini"]["failures"] == {"http_503": 2} and stats["openai"]["answered"] == 1


def test_a_tier_failing_mid_answer_ends_with_an_error_event(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    fake_gemini.reset(default=Reply(text="We build sites. And we host them too, for years.", break_after=1))
    client = make_client(
        agent={
            "google_api_key": "k",
            "gemini_base_url": fake_gemini.url,
            "contact_hint": "Call 0117 496 0738.",
        }
    )
    events, _ = stream(client)
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "error" and "token" in names
    assert events[-1][1]["message"].startswith("Sorry, the answer was interrupted.")
    assert "Call 0117 496 0738." in events[-1][1]["message"]
    assert fake_gemini.calls == 1  # no retry once the visitor has part of an answer
    assert client.post("/chat/stream", json=QUESTION).text.count("event: error") == 1  # nothing was cached


def test_a_plain_answer_collects_the_stream_and_falls_through_a_tier_failing_mid_answer(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    """One path: `/chat` collects the same stream. Nobody has seen any of a plain answer while it is
    generated, so a tier that breaks part-way gives way to the next one instead of an apology."""
    fake_gemini.reset(default=Reply(text="We build sites. And we host them too, for years.", break_after=1))
    client = make_client(agent={"google_api_key": "k", "gemini_base_url": fake_gemini.url, "max_retries": 0})
    body = client.post("/chat", json=QUESTION).json()
    assert body["status"] == "success" and body["model_info"]["provider"] == "extractive"
    assert "streamGenerateContent" in fake_gemini.requests[0].path
    stats = client.get("/stats/llm").json()["tiers"]
    assert stats["gemini"]["attempts"] == 1 and stats["gemini"]["successes"] == 0


def test_the_local_tier_streams_its_answer_once_checked(make_client: AppFactory) -> None:
    from tests.test_llama_cpp_tier import smollm2_gguf

    client = make_client(
        agent={
            "llm_chain": "local,extractive",
            "fallback_model_name": str(smollm2_gguf()),
            "chat_max_tokens": 96,
            "chat_temperature": 0.0,
            "grounding": "off",  # what is tested is the stream, not what a 135M model says
        }
    )
    events, _ = stream(client)
    _, text, done = check_shape(events)
    assert done["model_info"]["provider"] == "local" and text.strip()
    # A small model's answer is held until checked whole, then sent as one piece.
    assert len([e for e in events if e[0] == "token"]) == 1


def test_when_the_store_fails_the_stream_ends_with_an_error(make_client: AppFactory) -> None:
    client = make_client()
    services = client.app.state.services
    services.store._client.delete_collection(services.store.active_build.name)
    events, _ = stream(client)
    assert [name for name, _ in events] == ["error"]
    assert events[0][1]["message"].startswith("Sorry")


def test_stream_shares_the_chat_rate_limit_and_validation(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_chat": "2/minute"})
    assert client.post("/chat/stream", json={"message": ""}).status_code == 422
    assert client.post("/chat", json=QUESTION).status_code == 200
    assert client.post("/chat/stream", json=QUESTION).status_code == 200
    limited = client.post("/chat/stream", json=QUESTION)
    assert limited.status_code == 429 and limited.json() == {"error": "Rate limit exceeded: 2 per 1 minute"}
