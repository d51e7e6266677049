"""Every upstream fault, through the real app, the real SDKs and fake servers on 127.0.0.1: the visitor
gets an answer from the right lower tier, upstream calls are bounded, the deadline holds, and
/stats/llm and /health tell what happened."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from fakes.gemini_server import FakeGemini
from fakes.llm_server import FakeLLMServer, Reply
from fakes.openai_server import FakeOpenAI
from tests.conftest import AppFactory

RETRIES = 2

RETRYABLE = {
    "http_429": Reply(status=429),
    "http_500": Reply(status=500),
    "http_503": Reply(status=503),
    "timeout": Reply(delay=3.0),
    "connection": Reply(reset=True),
}
FALL_THROUGH = {
    "malformed": Reply(body=b"<html>Bad gateway</html>"),
    "empty": None,  # protocol-specific, below
    "blocked": None,
}


def fall_through_reply(reason: str, protocol: str) -> Reply:
    if reason == "malformed":
        return FALL_THROUGH["malformed"]  # type: ignore[return-value]
    if protocol == "gemini":
        return {
            "empty": Reply(body={"candidates": []}),
            "blocked": Reply(body={"candidates": [], "promptFeedback": {"blockReason": "SAFETY"}}),
        }[reason]
    # Answers are streamed: the server's events, as it sends them.
    choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "content_filter"}
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]}
    events = {"empty": [b"data: [DONE]\n\n"], "blocked": [sse(chunk), b"data: [DONE]\n\n"]}[reason]
    return Reply(body=b"".join(events), headers={"Content-Type": "text/event-stream"})


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def remote_settings(gemini: FakeGemini, openai: FakeOpenAI, **overrides: Any) -> dict[str, Any]:
    return {
        "llm_chain": "gemini,openai,extractive",
        "google_api_key": "gem-key",
        "gemini_base_url": gemini.url,
        "openai_base_url": openai.base_url,
        "openai_model": "fake-model",
        # Long enough that a fake's quick reply never times out on a busy shared machine (0.6 s did, now and
        # then), short enough against the hanging reply below.
        "gemini_timeout": 1.5,
        "openai_timeout": 1.5,
        "max_retries": RETRIES,
        "retry_delay": 0.05,
        "answer_deadline": 15.0,
        "circuit_breaker_failures": 100,
        **overrides,
    }


CASES = [(reason, True) for reason in RETRYABLE] + [(reason, False) for reason in FALL_THROUGH]


@pytest.mark.parametrize("failing", ["gemini", "openai"])
@pytest.mark.parametrize(("reason", "retryable"), CASES, ids=[c[0] for c in CASES])
def test_a_fault_goes_to_the_next_tier(
    make_client: AppFactory,
    fake_gemini: FakeGemini,
    fake_openai: FakeOpenAI,
    failing: str,
    reason: str,
    retryable: bool,
) -> None:
    chain = "gemini,openai,extractive" if failing == "gemini" else "openai,extractive"
    client = make_client(agent={**remote_settings(fake_gemini, fake_openai), "llm_chain": chain})
    broken: FakeLLMServer = fake_gemini if failing == "gemini" else fake_openai
    broken.reset(default=RETRYABLE[reason] if retryable else fall_through_reply(reason, failing))
    if failing == "gemini":
        fake_openai.reset(default=Reply(text="It came from the model server."))

    started = time.monotonic()
    body = client.post("/chat", json={"message": "What services do you offer?"}).json()
    elapsed = time.monotonic() - started

    expected = "openai" if failing == "gemini" else "extractive"
    assert body["status"] == "success" and body["model_info"]["provider"] == expected
    if expected == "openai":
        assert body["response"] == "It came from the model server."
    calls = 1 + RETRIES if retryable else 1
    assert broken.calls == calls
    assert elapsed < 15.0

    stats = client.get("/stats/llm").json()
    tier = stats["tiers"][failing]
    assert tier["attempts"] == calls and tier["failures"] == {reason: calls}
    assert tier["retries"] == calls - 1 and tier["successes"] == 0 and tier["last_error"] == reason
    assert stats["tiers"][expected]["answered"] == 1
    assert stats["requests"] == 1 and stats["fallback_rate"] == 1.0
    health = client.get("/health").json()
    assert {t["provider"]: t["last_error"] for t in health["llm"]["chain"]}[failing] == reason


def test_the_deadline_holds_when_an_upstream_hangs(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    # Each call may take 5 s, but the visitor waits 2 s at most: extractive answers in time.
    client = make_client(
        agent=remote_settings(
            fake_gemini, fake_openai, gemini_timeout=5.0, openai_timeout=5.0, answer_deadline=2.0
        )
    )
    fake_gemini.reset(default=Reply(delay=6.0))
    fake_openai.reset(default=Reply(delay=6.0))
    client.app.state.services.agent.prepare()  # the start-up warm-up, done: only the answer is timed
    started = time.monotonic()
    body = client.post("/chat", json={"message": "What are your support hours?"}).json()
    elapsed = time.monotonic() - started

    assert body["status"] == "success" and body["model_info"]["provider"] == "extractive"
    assert elapsed < 2.5
    assert fake_gemini.calls == 1  # no retry started that could not finish in time
    skipped = client.get("/stats/llm").json()["tiers"]["openai"]["skipped"]
    assert skipped == {"deadline": 1}


def test_retry_after_is_honoured(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    client = make_client(agent=remote_settings(fake_gemini, fake_openai, llm_chain="gemini,extractive"))
    fake_gemini.reset(
        Reply(status=429, headers={"Retry-After": "1"}), Reply(text="It answered after waiting.")
    )
    body = client.post("/chat", json={"message": "hello there, what do you do?"}).json()

    assert body["model_info"]["provider"] == "gemini" and body["response"] == "It answered after waiting."
    first, second = (r.at for r in fake_gemini.requests)
    assert 1.0 <= second - first < 1.6  # the server's wait, not our 0.05 s backoff, plus at most 25% jitter


def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    client = make_client(agent=remote_settings(fake_gemini, fake_openai, retry_after_max=5.0))
    # A first question pays for the knowledge's one-off preparation (the relevance calibration): not timed.
    client.post("/chat", json={"message": "What are your support hours?"})
    fake_gemini.reset(default=Reply(status=429, headers={"Retry-After": "120"}))
    fake_openai.reset(default=Reply(text="It came from the model server."))
    started = time.monotonic()
    body = client.post("/chat", json={"message": "What do you offer?"}).json()
    assert body["model_info"]["provider"] == "openai"
    assert fake_gemini.calls == 1 and time.monotonic() - started < 2.0


def test_gemini_retry_info_in_the_body_is_honoured(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.8s"}
    quota = {
        "error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [retry_info]}
    }
    client = make_client(agent=remote_settings(fake_gemini, fake_openai, llm_chain="gemini,extractive"))
    fake_gemini.reset(Reply(status=429, body=quota), Reply(text="The quota is back."))
    assert (
        client.post("/chat", json={"message": "What are your support hours?"}).json()["response"]
        == "The quota is back."
    )
    first, second = (r.at for r in fake_gemini.requests)
    assert 0.8 <= second - first < 1.3


def test_circuit_opens_skips_then_lets_one_trial_through(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    client = make_client(
        agent=remote_settings(
            fake_gemini, fake_openai, circuit_breaker_failures=3, circuit_breaker_seconds=1.0, max_retries=0
        )
    )
    fake_gemini.reset(default=Reply(status=503))
    fake_openai.reset(default=Reply(text="It came from the model server."))

    def ask(n: int) -> str:
        body = client.post(
            "/chat", json={"message": f"What are your support hours? ({n})", "use_cache": False}
        ).json()
        assert body["status"] == "success"
        return str(body["model_info"]["provider"])

    def circuit() -> str:
        return {t["provider"]: t["circuit"] for t in client.get("/health").json()["llm"]["chain"]}["gemini"]

    assert [ask(n) for n in range(3)] == ["openai"] * 3
    assert fake_gemini.calls == 3 and circuit() == "open"
    health = client.get("/health").json()["llm"]
    assert health["active"] == "openai"
    gemini = next(t for t in health["chain"] if t["provider"] == "gemini")
    assert gemini["state"] == "unavailable" and "circuit open" in gemini["detail"] and gemini["configured"]
    assert client.get("/stats/llm").json()["tiers"]["gemini"]["state"] == "unavailable"

    assert [ask(n) for n in range(3, 6)] == ["openai"] * 3
    assert fake_gemini.calls == 3  # an open circuit costs visitors nothing
    stats = client.get("/stats/llm").json()
    assert stats["tiers"]["gemini"]["skipped"] == {"circuit_open": 3}
    # Answers from below the best configured tier are fallbacks, open circuit or not: counted, and not
    # cached (once Gemini is back, visitors get its answers at once).
    assert stats["fallback_rate"] == 1.0
    same = {"message": "When is your support desk open?"}
    assert [client.post("/chat", json=same).json()["cached"] for _ in range(2)] == [False, False]

    time.sleep(1.1)
    assert circuit() == "half_open"
    assert ask(6) == "openai" and fake_gemini.calls == 4  # one trial, which failed: open again
    assert circuit() == "open"
    assert ask(7) == "openai" and fake_gemini.calls == 4

    time.sleep(1.1)
    fake_gemini.reset(default=Reply(text="The cloud model is back."))
    assert ask(8) == "gemini" and fake_gemini.calls == 1
    assert circuit() == "closed" and ask(9) == "gemini"


def test_half_open_trial_makes_a_single_attempt(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    client = make_client(
        agent=remote_settings(
            fake_gemini, fake_openai, circuit_breaker_failures=2, circuit_breaker_seconds=0.5
        )
    )
    fake_gemini.reset(default=Reply(status=503))
    fake_openai.reset(default=Reply(text="It came from the model server."))
    client.post("/chat", json={"message": "What services do you offer?"})
    assert fake_gemini.calls == 2  # the circuit opened after two failed attempts: the third was not made
    time.sleep(0.6)
    fake_gemini.reset(default=Reply(status=503))
    client.post("/chat", json={"message": "What are your support hours?"})
    assert fake_gemini.calls == 1  # the trial is one attempt, not 1 + MAX_RETRIES


def test_llm_stats_reports_latency_and_shares(
    make_client: AppFactory, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    client = make_client(agent=remote_settings(fake_gemini, fake_openai))
    fake_gemini.reset(Reply(text="one"), Reply(status=400), Reply(text="three"), Reply(text="four"))
    fake_openai.reset(default=Reply(text="from openai"))
    providers = [
        client.post(
            "/chat", json={"message": f"How much does a website cost? ({n})", "use_cache": False}
        ).json()["model_info"]["provider"]
        for n in range(4)
    ]
    assert providers == ["gemini", "openai", "gemini", "gemini"]

    stats = client.get("/stats/llm").json()
    gemini = stats["tiers"]["gemini"]
    assert (gemini["attempts"], gemini["successes"], gemini["answered"]) == (4, 3, 3)
    assert gemini["failures"] == {"http_400": 1} and gemini["retries"] == 0
    assert gemini["answered_share"] == 0.75 and stats["tiers"]["openai"]["answered_share"] == 0.25
    assert stats["fallback_rate"] == 0.25
    assert 0 < gemini["latency_mean_s"] <= gemini["latency_p95_s"] < 1.0
    assert gemini["state"] == "ready" and gemini["circuit"] == "closed"
    assert stats["tiers"]["extractive"]["circuit"] is None
