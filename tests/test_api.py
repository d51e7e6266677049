"""The HTTP contract, on the real app with its lifespan, a real store and the real embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from tests.conftest import AppFactory, Clock

QUESTION = {"message": "What services do you offer?"}


def test_chat_answers_from_the_knowledge_base_with_sources(make_client: AppFactory) -> None:
    client = make_client()
    response = client.post("/chat", json=QUESTION)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "response",
        "status",
        "cached",
        "sources",
        "model_info",
        "answer_id",
        "offer_contact",
    }
    assert body["offer_contact"] is False  # answered: no contact form
    assert body["status"] == "success" and body["cached"] is False
    assert len(body["answer_id"]) == 32  # what POST /feedback names
    assert "Web" in body["response"] or "web" in body["response"]
    assert body["model_info"]["provider"] == "extractive"
    assert body["model_info"]["model"] == "extractive"
    assert isinstance(body["model_info"]["response_time"], float)
    assert body["sources"], "an answer comes with its sources"
    for source in body["sources"]:
        assert set(source) == {"id", "title", "source", "score"}
    assert body["sources"][0]["source"] == "services.md"
    assert body["sources"][0]["title"] == "Our Services"


def test_same_question_differently_cased_is_served_from_cache(make_client: AppFactory) -> None:
    client = make_client()
    first = client.post("/chat", json=QUESTION).json()
    second = client.post("/chat", json={"message": "  what SERVICES do   you offer?  "}).json()

    assert first["cached"] is False and second["cached"] is True
    assert second["response"] == first["response"] and second["sources"] == first["sources"]
    assert second["model_info"]["provider"] == first["model_info"]["provider"]
    stats = client.get("/cache/stats").json()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 0.5)
    assert stats["total_entries"] == stats["valid_entries"] == 1


def test_use_cache_false_skips_the_lookup(make_client: AppFactory) -> None:
    client = make_client()
    client.post("/chat", json=QUESTION)
    bypass = client.post("/chat", json={**QUESTION, "use_cache": False}).json()
    assert bypass["cached"] is False
    assert client.get("/cache/stats").json()["hits"] == 0
    assert client.post("/chat", json=QUESTION).json()["cached"] is True


def test_cache_entries_expire_after_the_ttl(make_client: AppFactory) -> None:
    clock = Clock()
    client = make_client(api={"cache_ttl": 60}, clock=clock)
    client.post("/chat", json=QUESTION)
    clock.advance(59)
    assert client.post("/chat", json=QUESTION).json()["cached"] is True

    clock.advance(2)
    stats = client.get("/cache/stats").json()
    assert stats == {
        **stats,
        "total_entries": 1,
        "valid_entries": 0,
        "expired_entries": 1,
        "cache_ttl_seconds": 60,
    }
    assert client.post("/chat", json=QUESTION).json()["cached"] is False


def test_delete_cache_reports_what_it_removed(make_client: AppFactory) -> None:
    client = make_client()
    client.post("/chat", json=QUESTION)
    client.post("/chat", json={"message": "What are your office hours?"})

    response = client.delete("/cache")
    assert response.status_code == 200
    assert response.json() == {"message": "Cache cleared. Removed 2 entries", "removed": 2}
    assert client.get("/health").json()["cache_size"] == 0
    assert client.post("/chat", json=QUESTION).json()["cached"] is False
    assert client.delete("/cache").json()["removed"] == 1


def test_chat_limit_is_exact_and_the_429_explains_itself(make_client: AppFactory) -> None:
    client = make_client()
    statuses = [client.post("/chat", json=QUESTION).status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]

    limited = client.post("/chat", json=QUESTION)
    assert limited.status_code == 429
    assert limited.json() == {"error": "Rate limit exceeded: 20 per 1 minute"}
    assert 0 < int(limited.headers["Retry-After"]) <= 60


@pytest.mark.parametrize(
    ("setting", "method", "path", "allowed"),
    [
        ("rate_limit_root", "GET", "/", 3),
        ("rate_limit_cache_stats", "GET", "/cache/stats", 2),
        ("rate_limit_cache_clear", "DELETE", "/cache", 2),
        ("rate_limit_chat", "POST", "/chat", 3),
    ],
)
def test_each_limit_is_configurable(
    make_client: AppFactory, setting: str, method: str, path: str, allowed: int
) -> None:
    client = make_client(api={setting: f"{allowed}/minute"})
    kwargs = {"json": QUESTION} if method == "POST" else {}
    statuses = [client.request(method, path, **kwargs).status_code for _ in range(allowed + 1)]
    assert statuses == [200] * allowed + [429]


def test_default_limits(make_client: AppFactory) -> None:
    client = make_client()
    assert [client.get("/").status_code for _ in range(61)][-2:] == [200, 429]
    assert [client.get("/cache/stats").status_code for _ in range(31)][-2:] == [200, 429]
    assert [client.delete("/cache").status_code for _ in range(6)][-2:] == [200, 429]


def test_health_is_never_rate_limited(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_root": "1/minute", "rate_limit_chat": "1/minute"})
    assert all(client.get("/health").status_code == 200 for _ in range(80))


def test_health_shows_the_chain_and_the_active_tier(make_client: AppFactory) -> None:
    body = make_client().get("/health").json()
    assert body["status"] == "ok" and body["version"]
    assert body["vectors"] > 50 and body["cache_size"] == 0
    chain = {tier["provider"]: tier["state"] for tier in body["llm"]["chain"]}
    assert chain == {"gemini": "not configured", "extractive": "ready"}
    assert body["llm"]["active"] == "extractive"


def test_root_lists_the_endpoints(make_client: AppFactory) -> None:
    body = make_client().get("/").json()
    assert body["docs"] == "/docs"
    assert {"POST /chat", "GET /health", "GET /cache/stats", "DELETE /cache"} <= set(body["endpoints"])


def test_docs_and_openapi_are_served(make_client: AppFactory) -> None:
    client = make_client()
    assert client.get("/docs").status_code == 200
    assert "/chat" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"message": ""}, "message"),
        ({"message": "   \n\t "}, "must not be empty"),
        ({"message": "x" * 2001}, "at most 2000"),
        ({}, "message: Field required"),
        ({"message": 42}, "message"),
        ({"message": "hi", "use_cache": "sometimes"}, "use_cache"),
        ({"message": "hi", "session_id": "../../etc/passwd"}, "session_id"),
        ({"message": "hi", "unexpected": 1}, "unexpected"),
        ([1, 2, 3], "body"),
    ],
)
def test_bad_bodies_get_a_clear_422(make_client: AppFactory, body: object, mentions: str) -> None:
    response = make_client().post("/chat", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"].startswith("Invalid request: ") and mentions in payload["error"]
    assert "x" * 100 not in response.text  # the input is not echoed back


def test_malformed_json_is_a_422_not_a_500(make_client: AppFactory) -> None:
    response = make_client().post(
        "/chat", content=b'{"message": "hi"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "Invalid request" in response.json()["error"]


def test_message_of_exactly_2000_characters_is_accepted(make_client: AppFactory) -> None:
    assert make_client().post("/chat", json={"message": "pricing " * 250}).status_code == 200


def test_internal_errors_never_leak_details(make_client: AppFactory) -> None:
    client = make_client()

    def explode() -> None:
        raise RuntimeError("database password is hunter2")

    client.app.add_api_route("/explode", explode)  # type: ignore[attr-defined]
    client_no_raise = type(client)(client.app, raise_server_exceptions=False)
    response = client_no_raise.get("/explode")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error. Please try again later."}
    assert "hunter2" not in response.text and "Traceback" not in response.text


def test_with_a_key_gemini_answers(make_client: AppFactory, fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(text="We offer web development, apps and hosting."))
    client = make_client(agent={"google_api_key": "k-123", "gemini_base_url": fake_gemini.url})

    health = client.get("/health").json()
    assert health["llm"]["active"] == "gemini"
    body = client.post("/chat", json=QUESTION).json()
    assert body["model_info"] == {**body["model_info"], "provider": "gemini", "model": "gemini-3.8-flash"}
    assert body["response"] == "We offer web development, apps and hosting."
    assert body["sources"][0]["source"] == "services.md"
    assert client.post("/chat", json=QUESTION).json()["cached"] is True
    assert fake_gemini.calls == 1


def test_degraded_answers_are_not_cached(make_client: AppFactory, fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(status=503))
    client = make_client(
        agent={"google_api_key": "k-123", "gemini_base_url": fake_gemini.url, "max_retries": 1}
    )
    outage = client.post("/chat", json=QUESTION).json()
    assert outage["status"] == "success" and outage["model_info"]["provider"] == "extractive"
    assert fake_gemini.calls == 2

    fake_gemini.reset(default=Reply(text="It is back online."))
    recovered = client.post("/chat", json=QUESTION).json()
    assert recovered["cached"] is False and recovered["model_info"]["provider"] == "gemini"


def test_upstream_error_bodies_never_reach_the_visitor(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    fake_gemini.reset(default=Reply(status=400))
    client = make_client(agent={"google_api_key": "k-secret-999", "gemini_base_url": fake_gemini.url})
    response = client.post("/chat", json=QUESTION)
    assert response.status_code == 200
    assert "secret detail" not in response.text and "k-secret-999" not in response.text


def test_an_empty_knowledge_base_says_it_does_not_know(make_client: AppFactory, tmp_path: Path) -> None:
    empty = tmp_path / "empty-kb"
    empty.mkdir()
    client = make_client(
        agent={"contact_hint": "Call us on 0117 496 0738."},
        rag={"knowledge_dir": empty, "chroma_path": tmp_path / "empty-db"},
    )
    assert client.get("/health").json()["vectors"] == 0

    body = client.post("/chat", json=QUESTION).json()
    assert body["status"] == "success" and body["sources"] == []
    assert body["response"].startswith("Sorry, I couldn't find") and body["response"].endswith(
        "0117 496 0738."
    )


def test_when_the_store_fails_the_visitor_gets_an_apology(make_client: AppFactory) -> None:
    client = make_client(agent={"contact_hint": "Call us on 0117 496 0738."})
    services = client.app.state.services  # type: ignore[attr-defined]
    # The collection disappears under the running service (a wiped volume, a broken Chroma server).
    services.store._client.delete_collection(services.store.active_build.name)

    body = client.post("/chat", json=QUESTION).json()
    assert body["status"] == "error" and body["cached"] is False and body["sources"] == []
    assert body["response"].startswith("Sorry") and "Call us on 0117 496 0738." in body["response"]
    assert client.post("/chat", json=QUESTION).json()["cached"] is False  # errors are never cached


def test_every_response_carries_a_request_id(make_client: AppFactory) -> None:
    client = make_client()
    generated = client.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != client.get("/health").headers["X-Request-ID"]
    assert client.get("/health", headers={"X-Request-ID": "edge-123"}).headers["X-Request-ID"] == "edge-123"
    forged = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"}).headers["X-Request-ID"]
    assert forged != "bad id\nwith newline" and len(forged) == 32
    limited = make_client(api={"rate_limit_root": "1/minute"})
    limited.get("/")
    assert "X-Request-ID" in limited.get("/").headers  # errors too


def test_an_embedding_model_that_will_not_load_gives_an_apology_not_a_500(
    make_client: AppFactory, tmp_path: Path
) -> None:
    client = make_client(
        api={"ingest_on_start": False}, rag={"embedding_model": str(tmp_path / "no-such-model")}
    )
    assert client.get("/health").json()["embedder"] == "not loaded"
    response = client.post("/chat", json=QUESTION)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error" and body["response"].startswith("Sorry")
    assert "no-such-model" not in response.text
