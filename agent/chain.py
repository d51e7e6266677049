"""Tries each tier in order until one answers, within one deadline per request.

Falls through on our `GenerationError` family only. Remote tiers retry transient failures with backoff
and sit behind a circuit breaker; every tier call has its own timeout, capped by what is left of the
request's deadline; when too little is left, the chain goes straight to the last-resort tier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, replace

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
class StreamStart:
    """Sent once, before the first piece of a streamed answer: which tier is answering."""

    provider: str
    model: str
    degraded: bool


class StreamInterrupted(Exception):
    """A tier failed after it had streamed part of its answer: too late to fall through."""


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
        """Each tier as health reports it: a tier whose circuit is open cannot answer now, whatever its
        own status says."""
        views = []
        for t in self.tiers:
            status, circuit = t.generator.status(), t.breaker.state if t.breaker else None
            if circuit == "open" and status.usable:
                detail = "circuit open after repeated failures; one trial request when it half-opens"
                status = replace(status, state="unavailable", detail=detail)
            views.append(TierView(t.generator, status, circuit, self.stats.last_error(t.generator.provider)))
        return views

    def active(self) -> Generator | None:
        """The tier that answers when nothing fails: the first usable one whose circuit is not open."""
        for tier in self.tiers:
            if tier.generator.status().usable and (tier.breaker is None or tier.breaker.state != "open"):
                return tier.generator
        return None

    def meant_to_answer(self) -> Generator | None:
        """The best configured tier: the first usable one, open circuit or not. An answer from a tier below
        it is a fallback: counted in `fallback_rate`, and not cached, so that once the tier recovers visitors
        get its answers at once."""
        return next((t.generator for t in self.tiers if t.generator.status().usable), None)

    def signature(self) -> str:
        """Identifies what would answer; part of the answer-cache key."""
        return "|".join(f"{t.generator.provider}:{t.generator.model}" for t in self.tiers)

    async def generate(self, prompt: Prompt) -> Generation:
        ends_at = self._clock() + self.deadline
        best = self.meant_to_answer()
        failures: list[str] = []
        for tier in self.tiers:
            if not self._admit(tier, ends_at, failures):
                continue
            try:
                text = await self._call(tier, prompt, ends_at)
            except GenerationError as exc:
                self._give_up(tier, exc, failures)
                continue
            degraded = tier.generator is not best
            self.stats.request_done(tier.generator.provider, degraded=degraded)
            return Generation(text, tier.generator.provider, tier.generator.model, degraded=degraded)
        self.stats.request_done(None)
        raise AllTiersFailed("every tier failed: " + ", ".join(failures or ["none usable"]))

    async def stream(self, prompt: Prompt) -> AsyncGenerator[StreamStart | str, None]:
        """`StreamStart` once a tier produces its first piece, then the pieces. A tier that fails before its
        first piece falls through to the next one inside the same stream; one that fails after it raises
        `StreamInterrupted` (the visitor already has part of its answer)."""
        ends_at = self._clock() + self.deadline
        best = self.meant_to_answer()
        failures: list[str] = []
        for tier in self.tiers:
            if not self._admit(tier, ends_at, failures):
                continue
            generator = tier.generator
            start = StreamStart(generator.provider, generator.model, degraded=generator is not best)
            try:
                async for piece in self._stream_tier(tier, prompt, ends_at, start):
                    yield piece
            except GenerationError as exc:
                self._give_up(tier, exc, failures)
                continue
            self.stats.request_done(generator.provider, degraded=start.degraded)
            return
        self.stats.request_done(None)
        raise AllTiersFailed("every tier failed: " + ", ".join(failures or ["none usable"]))

    def _admit(self, tier: Tier, ends_at: float, failures: list[str]) -> bool:
        provider = tier.generator.provider
        if not tier.generator.status().usable:
            return False
        if not tier.last_resort and ends_at - self._clock() < LAST_RESORT_RESERVE + MIN_CALL_SECONDS:
            self.stats.skip(provider, "deadline")
            failures.append(f"{provider}: deadline")
            return False
        if tier.breaker is not None and not tier.breaker.allow():
            self.stats.skip(provider, "circuit_open")
            failures.append(f"{provider}: circuit open")
            return False
        return True

    @staticmethod
    def _give_up(tier: Tier, exc: GenerationError, failures: list[str]) -> None:
        failures.append(f"{tier.generator.provider}: {exc.reason}")
        log.warning(
            "generation_tier_failed", tier=tier.generator.provider, reason=exc.reason, detail=str(exc)
        )

    def _max_retries(self, tier: Tier) -> int:
        trial = tier.breaker is not None and tier.breaker.state == "half_open"
        return tier.retry.max_retries if tier.retry is not None and not trial else 0

    def _budget(self, tier: Tier, ends_at: float) -> float:
        """Seconds this attempt may take: the tier's timeout, within what the deadline leaves."""
        if tier.last_resort:
            return tier.timeout
        left = ends_at - self._clock() - LAST_RESORT_RESERVE
        if left < MIN_CALL_SECONDS:
            self.stats.skip(tier.generator.provider, "deadline")
            raise FallThroughError("no time left before the deadline", reason="deadline")
        return min(tier.timeout, left)

    def _succeeded(self, tier: Tier, seconds: float) -> None:
        self.stats.success(tier.generator.provider, seconds)
        if tier.breaker is not None:
            tier.breaker.record_success()

    def _failed(self, tier: Tier, error: GenerationError) -> None:
        self.stats.failure(tier.generator.provider, error.reason)
        if tier.breaker is not None:
            if error.unhealthy:
                tier.breaker.record_failure()
            else:  # the tier answered; only this request could not be served
                tier.breaker.record_success()

    async def _wait_to_retry(self, tier: Tier, error: GenerationError, attempt: int, ends_at: float) -> None:
        """Wait before trying the tier again, or raise `error` when another attempt is not worth it."""
        if not isinstance(error, RetryableError) or tier.retry is None or attempt >= self._max_retries(tier):
            raise error
        if tier.breaker is not None and tier.breaker.state != "closed":
            raise error  # the circuit just opened: stop hammering the tier
        delay = tier.retry.delay(attempt, error.retry_after)
        if delay is None or self._clock() + delay + MIN_CALL_SECONDS > ends_at - LAST_RESORT_RESERVE:
            raise error  # the upstream asks for too long, or waiting would leave no time for an attempt
        self.stats.retry(tier.generator.provider)
        log.info(
            "generation_retry",
            tier=tier.generator.provider,
            attempt=attempt + 1,
            delay_s=round(delay, 3),
            reason=error.reason,
        )
        await tier.retry.sleep(delay)

    async def _call(self, tier: Tier, prompt: Prompt, ends_at: float) -> str:
        """One tier: attempts with retries, each bounded by the tier's timeout and the deadline."""
        attempt = 0
        while True:
            budget = self._budget(tier, ends_at)
            self.stats.attempt(tier.generator.provider)
            started = self._clock()
            try:
                async with asyncio.timeout(budget + TIMEOUT_GRACE):
                    text = await tier.generator.generate(prompt, timeout=budget)
            except TimeoutError:
                error: GenerationError = _timed_out(tier, budget)
            except GenerationError as exc:
                error = exc
            else:
                self._succeeded(tier, self._clock() - started)
                return text
            self._failed(tier, error)
            await self._wait_to_retry(tier, error, attempt, ends_at)
            attempt += 1

    async def _stream_tier(
        self, tier: Tier, prompt: Prompt, ends_at: float, start: StreamStart
    ) -> AsyncIterator[StreamStart | str]:
        """Like `_call`, streaming. Each wait for a piece is bounded on its own, never across a `yield`:
        a timeout spanning a yield would fire inside whatever the consumer is doing at that moment."""
        attempt = 0
        while True:
            budget = self._budget(tier, ends_at)
            self.stats.attempt(tier.generator.provider)
            started = self._clock()
            stops_at = started + budget + TIMEOUT_GRACE
            pieces = tier.generator.stream(prompt, timeout=budget).__aiter__()
            produced = False
            try:
                while True:
                    try:
                        piece = await asyncio.wait_for(anext(pieces), max(0.001, stops_at - self._clock()))
                    except StopAsyncIteration:
                        break
                    if not produced:
                        produced = True
                        yield start
                    yield piece
            except TimeoutError:
                error: GenerationError = _timed_out(tier, budget)
            except GenerationError as exc:
                error = exc
            else:
                self._succeeded(tier, self._clock() - started)
                return
            finally:
                await pieces.aclose()  # type: ignore[attr-defined]
            self._failed(tier, error)
            if produced:
                raise StreamInterrupted(f"{tier.generator.provider} stopped mid-answer: {error.reason}")
            await self._wait_to_retry(tier, error, attempt, ends_at)
            attempt += 1

    async def aclose(self) -> None:
        for tier in self.tiers:
            await tier.generator.aclose()


def _timed_out(tier: Tier, budget: float) -> RetryableError:
    return RetryableError(f"{tier.generator.provider} timed out after {budget:.1f}s", reason="timeout")
