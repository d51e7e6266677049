"""Tries each tier in order until one answers, within one deadline per request.

Falls through on our `GenerationError` family only. Remote tiers retry transient failures with backoff
and sit behind a circuit breaker; every tier call has its own timeout, capped by what is left of the
request's deadline; when too little is left, the chain goes straight to the last-resort tier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent.circuit import CircuitBreaker
from agent.errors import AllTiersFailed, FallThroughError, GenerationError, RetryableError
from agent.generators.base import Generator, TierStatus
from agent.prompting import Prompt
from agent.retry import RetryPolicy
from agent.stats import ChainStats

log = structlog.get_logger(__name__)

# Kept back from every tier's budget so that the last-resort tier can still answer inside the deadline.
LAST_RESORT_RESERVE = 0.5
# A tier call with less time than this is not worth starting.
MIN_CALL_SECONDS = 0.5
# SDK timeouts fire first; this backstop only catches what they miss (DNS, a stuck body read).
TIMEOUT_GRACE = 0.25


@dataclass(frozen=True, slots=True)
class Tier:
    generator: Generator
    timeout: float
    retry: RetryPolicy | None = None  # remote tiers retry transient failures; local ones never do
    breaker: CircuitBreaker | None = None
    last_resort: bool = False  # runs whatever the deadline: the visitor always gets an answer


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    provider: str
    model: str
    degraded: bool  # a tier after the best usable one answered


@dataclass(frozen=True, slots=True)
class TierView:
    generator: Generator
    status: TierStatus
    circuit: str | None
    last_error: str | None


class GeneratorChain:
    def __init__(
        self, tiers: list[Tier], *, deadline: float = 40.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not tiers:
            raise ValueError("a generator chain needs at least one tier")
        self.tiers = tiers
        self.deadline = deadline
        self._clock = clock
        self.stats = ChainStats([t.generator.provider for t in tiers])

    def describe(self) -> list[TierView]:
        return [
            TierView(
                t.generator,
                t.generator.status(),
                t.breaker.state if t.breaker else None,
                self.stats.last_error(t.generator.provider),
            )
            for t in self.tiers
        ]

    def active(self) -> Generator | None:
        """The tier that answers when nothing fails: the first usable one whose circuit is not open."""
        for tier in self.tiers:
            if tier.generator.status().usable and (tier.breaker is None or tier.breaker.state != "open"):
                return tier.generator
        return None

    def signature(self) -> str:
        """Identifies what would answer; part of the answer-cache key."""
        return "|".join(f"{t.generator.provider}:{t.generator.model}" for t in self.tiers)

    async def generate(self, prompt: Prompt) -> Generation:
        ends_at = self._clock() + self.deadline
        best = self.active()
        failures: list[str] = []
        for tier in self.tiers:
            generator = tier.generator
            provider = generator.provider
            if not generator.status().usable:
                continue
            if not tier.last_resort and ends_at - self._clock() < LAST_RESORT_RESERVE + MIN_CALL_SECONDS:
                self.stats.skip(provider, "deadline")
                failures.append(f"{provider}: deadline")
                continue
            if tier.breaker is not None and not tier.breaker.allow():
                self.stats.skip(provider, "circuit_open")
                failures.append(f"{provider}: circuit open")
                continue
            try:
                text = await self._call(tier, prompt, ends_at)
            except GenerationError as exc:
                failures.append(f"{provider}: {exc.reason}")
                log.warning("generation_tier_failed", tier=provider, reason=exc.reason, detail=str(exc))
                continue
            degraded = generator is not best
            self.stats.request_done(provider, degraded=degraded)
            return Generation(text, provider, generator.model, degraded=degraded)
        self.stats.request_done(None)
        raise AllTiersFailed("every tier failed: " + ", ".join(failures or ["none usable"]))

    async def _call(self, tier: Tier, prompt: Prompt, ends_at: float) -> str:
        """One tier: attempts with retries, each bounded by the tier's timeout and the deadline."""
        generator, provider = tier.generator, tier.generator.provider
        trial = tier.breaker is not None and tier.breaker.state == "half_open"
        max_retries = tier.retry.max_retries if tier.retry is not None and not trial else 0
        attempt = 0
        while True:
            budget = tier.timeout
            if not tier.last_resort:
                left = ends_at - self._clock() - LAST_RESORT_RESERVE
                if left < MIN_CALL_SECONDS:
                    self.stats.skip(provider, "deadline")
                    raise FallThroughError("no time left before the deadline", reason="deadline")
                budget = min(budget, left)
            self.stats.attempt(provider)
            started = self._clock()
            try:
                async with asyncio.timeout(budget + TIMEOUT_GRACE):
                    text = await generator.generate(prompt, timeout=budget)
            except TimeoutError:
                error: GenerationError = RetryableError(
                    f"{provider} timed out after {budget:.1f}s", reason="timeout"
                )
            except GenerationError as exc:
                error = exc
            else:
                self.stats.success(provider, self._clock() - started)
                if tier.breaker is not None:
                    tier.breaker.record_success()
                return text

            self.stats.failure(provider, error.reason)
            if tier.breaker is not None:
                if error.unhealthy:
                    tier.breaker.record_failure()
                else:  # the tier answered; only this request could not be served
                    tier.breaker.record_success()
            if not isinstance(error, RetryableError) or attempt >= max_retries or tier.retry is None:
                raise error
            if tier.breaker is not None and tier.breaker.state != "closed":
                raise error  # the circuit just opened: stop hammering the tier
            delay = tier.retry.delay(attempt, error.retry_after)
            if delay is None or self._clock() + delay + MIN_CALL_SECONDS > ends_at - LAST_RESORT_RESERVE:
                raise error  # waiting would not leave time for another attempt
            self.stats.retry(provider)
            log.info(
                "generation_retry",
                tier=provider,
                attempt=attempt + 1,
                delay_s=round(delay, 3),
                reason=error.reason,
            )
            await tier.retry.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        for tier in self.tiers:
            await tier.generator.aclose()
