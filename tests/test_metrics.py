"""`GET /metrics`: Prometheus text from the live app, counting what really happened."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from tests.conftest import AppFactory

QUESTION = {"message": "What services do you offer?"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_cache_answers_tiers_and_limits(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    fake_gemini.reset(Reply(status=503), default=Reply(text="We build websites."))
    client = make_client(
        api={"rate_limit_chat": "3/minute"},
        agent={
            "llm_chain": "gemini,extractive",
            "google_api_key": "gem-key",
            "gemini_base_url": fake_gemini.url,
            "max_retries": 1,
            "retry_delay": 0.01,
        },
    )
    assert client.post("/chat", json=QUESTION).json()["model_info"]["provider"] == "gemini"  # after a retry
    assert client.post("/chat", json=QUESTION).json()["cached"] is True
    client.post("/chat", json={"message": "Hello!"})
    assert client.post("/chat", json=QUESTION).status_code == 429
    client.get("/history/some-session")

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    assert value(found, "kb_http_requests_total", route="/chat", method="POST", status="200") == 3
    assert value(found, "kb_http_requests_total", route="/chat", method="POST", status="429") == 1
    # Routes, not raw paths: a session id never becomes a label.
    assert (
        value(found, "kb_http_requests_total", route="/history/{session_id}", method="GET", status="200") == 1
    )
    assert value(found, "kb_http_request_duration_seconds_count", route="/chat", method="POST") == 4
    assert value(found, "kb_answer_cache_lookups_total", result="hit") == 1
    assert value(found, "kb_answer_cache_lookups_total", result="miss") == 2
    assert value(found, "kb_answers_total", provider="gemini", status="success", cached="false") == 1
    assert value(found, "kb_answers_total", provider="gemini", status="success", cached="true") == 1
    assert (
        value(found, "kb_answers_total", provider="none", status="success", cached="false") == 1
    )  # small talk
    assert value(found, "kb_rate_limited_requests_total", route="/chat") == 1
    assert value(found, "kb_llm_attempts_total", provider="gemini") == 2
    assert value(found, "kb_llm_retries_total", provider="gemini") == 1
    assert value(found, "kb_llm_failures_total", provider="gemini", reason="http_503") == 1
    assert value(found, "kb_llm_circuit_state", provider="gemini") == 0  # closed
    assert value(found, "kb_ingest_runs_total", status="up_to_date") == 1  # the start found the store current


def test_metrics_are_an_admin_call(make_client: AppFactory) -> None:
    client = make_client(api={"admin_token": "metrics-scraper-token"})
    assert client.get("/metrics").status_code == 401
    scraped = client.get("/metrics", headers={"Authorization": "Bearer metrics-scraper-token"})
    assert scraped.status_code == 200 and "kb_http_requests_total" in scraped.text


def test_openai_answers_are_counted_and_logged_like_chat_answers(
    make_client: AppFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    client = make_client()
    capfd.readouterr()
    completion = {"model": "kb-chatbot", "messages": [{"role": "user", "content": QUESTION["message"]}]}
    assert client.post("/v1/chat/completions", json=completion).status_code == 200
    assert client.post("/v1/chat/completions", json={**completion, "stream": True}).status_code == 200
    assert client.post("/chat", json=QUESTION).json()["cached"] is True

    found = samples(client.get("/metrics").text)
    assert value(found, "kb_answers_total", provider="extractive", status="success", cached="false") == 1
    assert value(found, "kb_answers_total", provider="extractive", status="success", cached="true") == 2
    answered = [line for line in capfd.readouterr().err.splitlines() if "chat_answered" in line]
    logged = [re.findall(r"\b(surface|cached|provider)=(\w+)", line) for line in answered]
    assert [dict(fields) for fields in logged] == [
        {"surface": "openai", "cached": "False", "provider": "extractive"},
        {"surface": "openai_stream", "cached": "True", "provider": "extractive"},
        {"surface": "chat", "cached": "True", "provider": "extractive"},
    ]
