"""Per-IP rate limits: which budget each route spends, what a response says about it, and where the counters
live (this process, or Redis shared by replicas)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from limits import parse
from limits.aio.strategies import FixedWindowRateLimiter

from api.memory_counters import SWEEP_SECONDS, MemoryCounters
from tests.conftest import AppFactory, Clock

QUESTION = {"message": "What are your support hours?"}
COMPLETION = {"model": "kb-chatbot", "messages": [{"role": "user", "content": QUESTION["message"]}]}
TOKEN = "an-admin-token-of-enough-length"
LIMIT_HEADERS = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"}


def test_every_chat_surface_spends_the_one_chat_budget(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_chat": "3/minute"})
    assert client.post("/chat", json=QUESTION).status_code == 200
    assert client.post("/v1/chat/completions", json=COMPLETION).status_code == 200
    assert client.post("/chat/stream", json=QUESTION).status_code == 200

    for path, body in (("/chat", QUESTION), ("/chat/stream", QUESTION), ("/v1/chat/completions", COMPLETION)):
        refused = client.post(path, json=body)
        assert refused.status_code == 429, path
        assert set(refused.headers) >= LIMIT_HEADERS
    openai_shaped = client.post("/v1/chat/completions", json={**COMPLETION, "stream": True})
    assert openai_shaped.json()["error"]["message"] == "Rate limit exceeded: 3 per 1 minute"
    assert client.post("/chat", json=QUESTION).json() == {"error": "Rate limit exceeded: 3 per 1 minute"}


def test_every_response_of_a_limited_route_tells_the_budget(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_chat": "5/minute", "rate_limit_root": "7/minute"})
    replies = [
        client.post("/chat", json=QUESTION),  # answered in the ASGI layer
        client.post("/chat", json={**QUESTION, "session_id": "s-1"}),  # by the route
        client.post("/chat/stream", json=QUESTION),  # a stream
        client.post("/v1/chat/completions", json=COMPLETION),  # a model serialized by FastAPI
    ]
    assert [r.status_code for r in replies] == [200] * 4
    assert [r.headers["x-ratelimit-limit"] for r in replies] == ["5"] * 4
    assert [r.headers["x-ratelimit-remaining"] for r in replies] == ["4", "3", "2", "1"]
    assert len({reply.headers["x-ratelimit-reset"] for reply in replies}) == 1  # one window
    assert 0 < float(replies[0].headers["x-ratelimit-reset"]) - time.time() <= 61
    assert all(0 < int(reply.headers["retry-after"]) <= 61 for reply in replies)
    root = client.get("/")
    assert (root.headers["x-ratelimit-limit"], root.headers["x-ratelimit-remaining"]) == ("7", "6")
    assert not LIMIT_HEADERS & set(client.get("/health").headers)  # never limited


def test_requests_the_route_refuses_spend_nothing(make_client: AppFactory) -> None:
    client = make_client(
        api={
            "rate_limit_chat": "1/minute",
            "rate_limit_history": "1/minute",
            "allowed_origins": "https://a.test",
        }
    )
    evil = {"Origin": "https://evil.test"}
    for _ in range(3):
        assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 422
        assert client.post("/v1/chat/completions", json=COMPLETION, headers=evil).status_code == 403
        assert client.post("/chat", json={"message": " "}).status_code == 422
        assert client.get("/history/not a session").status_code == 422
        assert client.get("/history/s-1", headers=evil).status_code == 403
        assert not LIMIT_HEADERS & set(client.post("/chat", json=QUESTION, headers=evil).headers)
    assert client.post("/v1/chat/completions", json=COMPLETION).status_code == 200
    assert client.get("/history/s-1").status_code == 200


def test_the_history_budget_is_per_visitor_not_per_conversation(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_history": "2/minute"})
    assert client.get("/history/first").status_code == 200
    assert client.delete("/history/second").status_code == 200
    assert client.get("/history/third").status_code == 429


def test_admin_calls_without_the_token_spend_no_admin_budget(make_client: AppFactory) -> None:
    client = make_client(api={"admin_token": TOKEN, "rate_limit_admin": "1/minute"})
    for _ in range(3):
        assert client.get("/admin/knowledge").status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/admin/knowledge", headers=right).status_code == 200
    assert client.get("/admin/knowledge", headers=right).status_code == 429
    assert client.get("/admin/reindex", headers=right).status_code == 404  # a budget of its own


def test_replicas_sharing_redis_share_the_budget(make_client: AppFactory, redis_url: str) -> None:
    settings = {"redis_url": redis_url, "rate_limit_chat": "2/minute"}
    one, two = make_client(api=settings), make_client(api=settings)
    assert one.post("/chat", json=QUESTION).status_code == 200
    assert two.post("/chat/stream", json=QUESTION).status_code == 200
    assert one.post("/chat", json=QUESTION).status_code == 429
    assert two.post("/v1/chat/completions", json=COMPLETION).status_code == 429


def test_a_slow_redis_never_holds_the_event_loop(make_client: AppFactory, redis_url: str) -> None:
    client = make_client(api={"redis_url": redis_url})
    assert client.post("/chat", json=QUESTION).status_code == 200  # connections made, answer cached
    pauser = redis.Redis.from_url(redis_url)
    pauser.client_pause(1500, all=True)  # every Redis command now waits 1.5 s
    try:
        asked = threading.Thread(target=client.post, args=("/chat/stream",), kwargs={"json": QUESTION})
        started = time.monotonic()
        asked.start()
        time.sleep(0.2)  # the question is waiting on its rate-limit check
        assert asked.is_alive()
        assert client.get("/health").status_code == 200
        assert time.monotonic() - started < 1.0  # answered while the check still waited
        asked.join(10)
    finally:
        pauser.client_unpause()
        pauser.close()


def test_in_process_counters_expire_exactly_and_are_swept() -> None:
    clock = Clock()
    counters = MemoryCounters(clock=clock)
    strategy = FixedWindowRateLimiter(counters)
    minute = parse("2/minute")

    async def scenario() -> None:
        hits = [await strategy.hit(minute, "kbchat", "10.0.0.1", "chat") for _ in range(3)]
        assert hits == [True, True, False]
        reset, remaining = await strategy.get_window_stats(minute, "kbchat", "10.0.0.1", "chat")
        assert (reset, remaining) == (clock.now + 60, 0)
        for n in range(100):  # a crowd of visitors
            await strategy.hit(parse("1/second"), "kbchat", f"10.0.1.{n}", "chat")
        assert len(counters) == 101

        clock.advance(SWEEP_SECONDS + 0.5)  # their seconds are over; the first visitor's minute is not
        assert await strategy.hit(minute, "kbchat", "10.0.0.2", "chat")
        assert len(counters) == 2  # swept
        assert not await strategy.test(minute, "kbchat", "10.0.0.1", "chat")

        clock.advance(60)
        assert await strategy.hit(minute, "kbchat", "10.0.0.1", "chat")  # a new window, to the second

    asyncio.run(scenario())


@pytest.mark.parametrize("setting", ["20/hour;3/minute", "3/minute;20/hour"])
def test_a_setting_may_hold_several_limits(make_client: AppFactory, setting: str) -> None:
    client = make_client(api={"rate_limit_root": setting})
    replies = [client.get("/") for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert replies[0].headers["x-ratelimit-limit"] == "3"  # the shortest window is the one shown
    assert replies[-1].json() == {"error": "Rate limit exceeded: 3 per 1 minute"}
