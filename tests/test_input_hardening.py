"""Bad input gets a clear 4xx and never a 500; every response carries the security headers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from tests.conftest import AppFactory
from tests.test_streaming import check_shape, stream

QUESTION = "What services do you offer?"


def test_a_body_over_the_cap_gets_413_before_it_is_parsed(make_client: AppFactory) -> None:
    client = make_client()
    huge = {"message": QUESTION, "padding": "x" * 70_000}
    response = client.post("/chat", json=huge)
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large: at most 65536 bytes."}

    openai = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 70_000}]}
    )
    assert openai.status_code == 413 and openai.json()["error"]["type"] == "invalid_request_error"


def test_a_chunked_body_over_the_cap_gets_413_too(make_client: AppFactory) -> None:
    client = make_client(api={"max_body_bytes": 2048})

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is only known by reading
        yield b'{"message": "'
        for _ in range(10):
            yield b"y" * 512
        yield b'"}'

    response = client.post("/chat", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "at most 2048 bytes" in response.json()["error"]

    def small() -> Iterator[bytes]:
        yield b'{"message": "What services '
        yield b'do you offer?"}'

    fine = client.post("/chat", content=small(), headers={"Content-Type": "application/json"})
    assert fine.status_code == 200 and fine.json()["sources"]


def test_the_message_length_cap_is_a_setting(make_client: AppFactory) -> None:
    client = make_client(api={"max_message_chars": 40})
    assert client.post("/chat", json={"message": "a" * 40}).status_code == 200
    too_long = client.post("/chat", json={"message": "a" * 41})
    assert too_long.status_code == 422
    assert too_long.json()["error"] == "Invalid request: message: String should have at most 40 characters"
    assert client.post("/chat/stream", json={"message": "a" * 41}).status_code == 422
    openai = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "a" * 41}]})
    assert openai.status_code == 422 and "at most 40 characters" in openai.json()["error"]["message"]


def test_invisible_characters_are_stripped_and_a_message_of_nothing_else_is_refused(
    make_client: AppFactory,
) -> None:
    client = make_client()
    smuggled = "What\x00 services\u202e do you\u200b offer?\x07"
    body = client.post("/chat", json={"message": smuggled, "session_id": "clean-1"}).json()
    assert body["status"] == "success" and body["sources"][0]["source"] == "services.md"
    stored = client.get("/history/clean-1").json()["messages"][0]["content"]
    assert stored == "What services do you offer?"

    empty = client.post("/chat", json={"message": "\x00\u200b\x1b\u2066"})
    assert empty.status_code == 422 and "message must not be empty" in empty.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"message": 42}',
        b'{"message": ["a"]}',
        b'{"message": "hi", "session_id": "../../etc/passwd"}',
        b'{"message": "hi", "use_cache": "maybe"}',
        b'{"message": "hi", "unexpected": true}',
        b'{"message": "\\ud800"}',
        b"[]",
        b"",
    ],
)
def test_malformed_bodies_get_422_with_a_message(make_client: AppFactory, body: bytes) -> None:
    response = make_client().post("/chat", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("Invalid request:")


def test_every_response_carries_the_security_headers(make_client: AppFactory) -> None:
    client = make_client()
    responses = [
        client.get("/health"),
        client.post("/chat", json={"message": QUESTION}),
        client.post("/chat", json={}),  # 422
        client.get("/no/such/page"),  # 404
    ]
    for response in responses:
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert headers["cross-origin-resource-policy"] == "same-site"
        assert "strict-transport-security" not in headers  # plain HTTP here
    docs = client.get("/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers  # Swagger UI's CDN
    assert docs.headers["x-content-type-options"] == "nosniff"


def test_a_runaway_answer_is_capped_at_a_word(make_client: AppFactory, fake_gemini: FakeGemini) -> None:
    endless = " ".join(["word"] * 5000)  # 25,000 characters, not one sentence end
    fake_gemini.reset(default=Reply(text=endless))
    client = make_client(
        agent={
            "llm_chain": "gemini,extractive",
            "google_api_key": "gem-key",
            "gemini_base_url": fake_gemini.url,
            "max_answer_chars": 300,
        }
    )

    plain = client.post("/chat", json={"message": QUESTION}).json()
    assert plain["model_info"]["provider"] == "gemini"
    assert len(plain["response"]) <= 300 and plain["response"].endswith("\u2026")
    assert plain["response"][:-1].split()[-1].startswith("word")  # whole words only
    assert endless.startswith(plain["response"][:-1].rstrip())

    events, _ = stream(client, {"message": QUESTION, "use_cache": False})
    _, text, done = check_shape(events)
    assert len(text) <= 300 and text.endswith("\u2026") and done["status"] == "success"
