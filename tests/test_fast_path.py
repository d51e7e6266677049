"""Plain questions to POST /chat are answered in the ASGI layer (api.fastpath): the same body, headers,
limits, counts and errors as the route gives, and everything else still reaches the route."""

from __future__ import annotations

import json
from collections.abc import Iterator

from tests.conftest import AppFactory

QUESTION = {"message": "What are your support hours?"}
# A JSON media type the fast path leaves to the route (FastAPI parses any +json subtype): a cache hit answered
# by the route itself, to compare with.
ROUTE_ONLY = {"Content-Type": "application/vnd.question+json"}
VARYING = {
    "date",
    "content-length",
    "x-request-id",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
}


def _body(response_json: dict[str, object]) -> dict[str, object]:
    info = dict(response_json["model_info"])  # type: ignore[call-overload]
    info.pop("response_time")
    answer_id = response_json["answer_id"]
    assert isinstance(answer_id, str) and len(answer_id) == 32  # each reply its own: feedback names it
    return {**response_json, "model_info": info, "answer_id": None}


def test_a_cache_hit_is_the_same_whichever_layer_answers_it(make_client: AppFactory) -> None:
    client = make_client()
    first = client.post("/chat", json=QUESTION)
    assert first.json()["cached"] is False

    fast = client.post("/chat", json=QUESTION)
    routed = client.post("/chat", content=json.dumps(QUESTION), headers=ROUTE_ONLY)

    assert fast.status_code == routed.status_code == 200
    assert fast.json()["cached"] is True and routed.json()["cached"] is True
    assert _body(fast.json()) == _body(routed.json())
    assert {k: v for k, v in fast.headers.items() if k not in VARYING} == {
        k: v for k, v in routed.headers.items() if k not in VARYING
    }
    assert VARYING - {"date", "content-length"} <= set(fast.headers)
    assert fast.headers["x-request-id"] != routed.headers["x-request-id"]


def test_hits_and_misses_share_one_rate_limit_budget(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_chat": "4/minute"})
    replies = [
        client.post("/chat", json=QUESTION),  # a miss: the route answers
        client.post("/chat", json=QUESTION),  # hits, answered before the route
        client.post("/chat", json=QUESTION),
        client.post("/chat", json={"message": "Where are you based?"}),  # a miss again
        client.post("/chat", json=QUESTION),  # over the limit, though cached
    ]
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in replies[:4]] == ["3", "2", "1", "0"]
    assert [r.json()["cached"] for r in replies[:4]] == [False, True, True, False]
    limited = replies[-1]
    assert limited.json() == {"error": "Rate limit exceeded: 4 per 1 minute"}
    assert 0 < int(limited.headers["retry-after"]) <= 60
    # The route's own 429 for the same visitor is the same answer.
    routed = client.post("/chat", content=json.dumps(QUESTION), headers=ROUTE_ONLY)
    assert routed.status_code == 429 and routed.json() == limited.json()
    assert set(routed.headers) - {"date"} == set(limited.headers) - {"date"}


def test_each_lookup_is_counted_once(make_client: AppFactory) -> None:
    client = make_client()
    for _ in range(3):
        client.post("/chat", json=QUESTION)
    client.post("/chat", json={"message": "Where are you based?"})

    stats = client.get("/cache/stats").json()
    assert (stats["hits"], stats["misses"]) == (2, 2)
    metrics = client.get("/metrics").text
    assert 'kb_answer_cache_lookups_total{result="hit"} 2.0' in metrics
    assert 'kb_answer_cache_lookups_total{result="miss"} 2.0' in metrics
    assert 'kb_http_requests_total{method="POST",route="/chat",status="200"} 4.0' in metrics
    assert 'kb_answers_total{cached="true",provider="extractive",status="success"} 2.0' in metrics
    assert 'kb_answers_total{cached="false",provider="extractive",status="success"} 2.0' in metrics


def test_what_the_route_must_answer_still_reaches_it(make_client: AppFactory) -> None:
    client = make_client(api={"allowed_origins": "https://shop.example", "max_message_chars": 40})
    client.post("/chat", json=QUESTION)
    assert client.post("/chat", json=QUESTION).json()["cached"] is True

    refused = client.post("/chat", json=QUESTION, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert client.post("/chat", json={**QUESTION, "colour": "red"}).status_code == 422
    assert client.post("/chat", json={"message": "x" * 41}).status_code == 422
    unreadable = client.post("/chat", content=b"{not json", headers={"Content-Type": "application/json"})
    assert unreadable.status_code in (400, 422)
    # A conversation under way and an explicit bypass are never answered from the shared cache.
    assert client.post("/chat", json={**QUESTION, "session_id": "s1"}).status_code == 200
    assert client.post("/chat", json={**QUESTION, "session_id": "s1"}).json()["cached"] is False
    assert client.post("/chat", json={**QUESTION, "use_cache": False}).json()["cached"] is False


def test_a_body_in_pieces_is_read_whole(make_client: AppFactory) -> None:
    client = make_client()
    client.post("/chat", json=QUESTION)
    raw = json.dumps(QUESTION).encode()

    def pieces() -> Iterator[bytes]:
        yield raw[:7]
        yield raw[7:20]
        yield raw[20:]

    # No Content-Length: the body arrives chunked, in several messages.
    reply = client.post("/chat", content=pieces(), headers={"Content-Type": "application/json"})
    assert reply.status_code == 200 and reply.json()["cached"] is True
