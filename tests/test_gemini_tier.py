"""The Gemini tier through the real google-genai SDK against a fake Gemini server over HTTP."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from agent.chain import GeneratorChain, Tier
from agent.errors import FallThroughError, RetryableError
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.gemini import GeminiGenerator
from agent.prompting import Prompt
from agent.retry import RetryPolicy
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from rag.retriever import Passage

PASSAGE = Passage(
    id="p1",
    source="pricing.md",
    title="Pricing",
    headings="Website Packages",
    text="The Starter package costs £4,950. It includes a custom theme and one hour of training.",
    score=0.8,
)
PROMPT = Prompt("How much is the Starter package?", (PASSAGE,))
API_KEY = "test-key-123"


def gemini(fake: FakeGemini) -> GeminiGenerator:
    return GeminiGenerator(API_KEY, "gemini-test", base_url=fake.url)


def chain(fake: FakeGemini, retries: int = 3, delay: float = 0.05) -> GeneratorChain:
    return GeneratorChain(
        [
            Tier(gemini(fake), 5.0, RetryPolicy(retries, delay)),
            Tier(ExtractiveGenerator(), 5.0, last_resort=True),
        ]
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_success_sends_instructions_apart_from_context(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(Reply(text="The Starter package is £4,950."))
    result = run(chain(fake_gemini).generate(PROMPT))

    assert (result.provider, result.model, result.text) == (
        "gemini",
        "gemini-test",
        "The Starter package is £4,950.",
    )
    assert not result.degraded
    (request,) = fake_gemini.requests
    assert "/models/gemini-test:streamGenerateContent" in request.path  # one path: plain answers collect it
    assert request.headers.get("x-goog-api-key") == API_KEY
    system = request.body["systemInstruction"]["parts"][0]["text"]
    user = request.body["contents"][0]["parts"][0]["text"]
    assert "untrusted data" in system and "£4,950" not in system
    assert "<documents>" in user and "£4,950" in user and "How much is the Starter package?" in user


def test_503_then_success_is_retried(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(Reply(status=503), Reply(text="It recovered."))
    result = run(chain(fake_gemini).generate(PROMPT))
    assert result.provider == "gemini" and result.text == "It recovered."
    assert fake_gemini.calls == 2


def test_always_503_exhausts_retries_with_backoff_then_falls_back(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(status=503))
    result = run(chain(fake_gemini, retries=3, delay=0.05).generate(PROMPT))

    assert result.provider == "extractive" and result.degraded
    assert "£4,950" in result.text
    assert fake_gemini.calls == 4  # one attempt and MAX_RETRIES=3 retries, no SDK retries on top
    arrivals = [r.at for r in fake_gemini.requests]
    gaps = [later - earlier for earlier, later in pairwise(arrivals)]
    for gap, expected in zip(gaps, [0.05, 0.10, 0.20], strict=True):
        assert expected <= gap < expected + 0.5, gaps


def test_429_is_retried(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(Reply(status=429), Reply(text="It answered after the rate limit."))
    assert run(chain(fake_gemini).generate(PROMPT)).text == "It answered after the rate limit."
    assert fake_gemini.calls == 2


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_4xx_falls_through_at_once(fake_gemini: FakeGemini, status: int) -> None:
    fake_gemini.reset(default=Reply(status=status))
    result = run(chain(fake_gemini).generate(PROMPT))
    assert result.provider == "extractive"
    assert fake_gemini.calls == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body={"candidates": [], "promptFeedback": {"blockReason": "SAFETY"}}),
        Reply(body={"candidates": []}),
        Reply(text="   "),
        Reply(body=b"<html>not json</html>"),
    ],
    ids=["safety-block", "no-candidates", "blank-text", "malformed"],
)
def test_unusable_replies_fall_through_without_retry(fake_gemini: FakeGemini, reply: Reply) -> None:
    fake_gemini.reset(default=reply)
    with pytest.raises(FallThroughError):
        run(gemini(fake_gemini).generate(PROMPT, timeout=5.0))
    assert fake_gemini.calls == 1


def test_timeout_is_retryable(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(delay=1.5))
    with pytest.raises(RetryableError):
        run(gemini(fake_gemini).generate(PROMPT, timeout=0.3))


def test_connection_refused_is_retryable() -> None:
    generator = GeminiGenerator(API_KEY, "gemini-test", base_url="http://127.0.0.1:9")
    with pytest.raises(RetryableError):
        run(generator.generate(PROMPT, timeout=2.0))


def test_error_text_never_carries_the_upstream_body(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(status=400))
    with pytest.raises(FallThroughError) as caught:
        run(gemini(fake_gemini).generate(PROMPT, timeout=5.0))
    assert "secret detail" not in str(caught.value)
    assert caught.value.status == 400


def test_without_key_the_tier_is_skipped(fake_gemini: FakeGemini) -> None:
    tier = GeminiGenerator(None, "gemini-test", base_url=fake_gemini.url)
    assert tier.status().state == "not configured"
    tiers = [Tier(tier, 5.0), Tier(ExtractiveGenerator(), 5.0, last_resort=True)]
    result = run(GeneratorChain(tiers).generate(PROMPT))
    assert result.provider == "extractive" and not result.degraded
    assert fake_gemini.calls == 0


def test_a_reset_connection_is_one_call_not_an_sdk_retry(fake_gemini: FakeGemini) -> None:
    import time

    fake_gemini.reset(default=Reply(reset=True))
    started = time.monotonic()
    with pytest.raises(RetryableError) as caught:
        run(gemini(fake_gemini).generate(PROMPT, timeout=5.0))
    assert caught.value.reason == "connection"
    assert fake_gemini.calls == 1 and time.monotonic() - started < 1.0
