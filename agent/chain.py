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
from agent.evidence import focus, left_out, rephrased
from agent.generators.base import Generator, TierStatus
from agent.grounding import GroundingGuard, SentenceGate, answers_kind
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
    checked: bool = True  # its facts go through the grounding guard; off only for a tier that copies passages
    # A small model's answer is held until it is complete: shown only if it states a fact of the kind the
    # question asks for (an amount for "how much"), else the next tier answers. Its stream is one piece.
    hold: bool = False
    # Sentences of the passages the tier is shown: those that bear on the question, as the extractive answer
    # would choose them (a small model answers from a few sentences, not from whole passages); 0: all.
    evidence: int = 0


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
        self,
        tiers: list[Tier],
        *,
        deadline: float = 40.0,
        guard: GroundingGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not tiers:
            raise ValueError("a generator chain needs at least one tier")
        self.tiers = tiers
        self.deadline = deadline
        self.guard = guard or GroundingGuard()
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
        """The stream, collected. Every tier's answer is held until it is complete, so a tier that fails
        part-way through falls through to the next one: nobody has seen any of it yet."""
        start: StreamStart | None = None
        pieces: list[str] = []
        async for event in self.stream(prompt, held=True):
            if isinstance(event, StreamStart):
                start = event
            else:
                pieces.append(event)
        assert start is not None  # a stream that ends without raising has started
        return Generation("".join(pieces).strip(), start.provider, start.model, start.degraded)

    async def stream(
        self, prompt: Prompt, *, held: bool = False, max_chars: int | None = None
    ) -> AsyncGenerator[StreamStart | str, None]:
        """`StreamStart` once a tier produces its first piece, then the pieces. A tier that fails before its
        first piece falls through to the next one inside the same stream; one that fails after it raises
        `StreamInterrupted` (the visitor already has part of its answer). `held`: every tier's answer comes
        whole, in one piece, once it is complete and checked; `max_chars`: a held answer is read no further
        than this (the rest would be cut anyway)."""
        ends_at = self._clock() + self.deadline
        best = self.meant_to_answer()
        failures: list[str] = []
        for tier in self.tiers:
            if not self._admit(tier, ends_at, failures):
                continue
            generator = tier.generator
            start = StreamStart(generator.provider, generator.model, degraded=generator is not best)
            try:
                whole = held or tier.hold
                answer = self._stream_tier(tier, prompt, ends_at, start, held=whole, max_chars=max_chars)
                async for piece in answer:
                    yield piece
            except GenerationError as exc:
                self._give_up(tier, exc, failures)
                continue
            self.stats.request_done(generator.provider, degraded=start.degraded)
            return
        self.stats.request_done(None)
        raise _exhausted(failures)

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

    async def _stream_tier(
        self,
        tier: Tier,
        prompt: Prompt,
        ends_at: float,
        start: StreamStart,
        *,
        held: bool,
        max_chars: int | None = None,
    ) -> AsyncIterator[StreamStart | str]:
        """One tier: attempts with retries, each bounded by the tier's timeout and the deadline. Each wait
        for a piece is bounded on its own, never across a `yield`: a timeout spanning a yield would fire
        inside whatever the consumer is doing at that moment. `held`: the whole answer, checked, then
        shown as one piece."""
        given = focus(prompt, tier.evidence)
        if given is None:  # a small model given nothing that bears on the question would invent or hedge
            self.stats.skip(tier.generator.provider, "no_match")
            raise FallThroughError("no sentence of the passages bears on the question", reason="no_match")
        attempt = 0
        while True:
            budget = self._budget(tier, ends_at)
            self.stats.attempt(tier.generator.provider)
            started = self._clock()
            stops_at = started + budget + TIMEOUT_GRACE
            pieces = tier.generator.stream(given, timeout=budget).__aiter__()
            gate = self._gate(tier, given)
            produced = False
            try:
                if held:
                    whole_pieces: list[str] = []
                    length = 0
                    while (piece := await self._next(pieces, stops_at)) is not None:
                        whole_pieces.append(piece)
                        length += len(piece)
                        if max_chars is not None and length > max_chars:
                            break  # a runaway answer: what follows would be cut, so stop the tier now
                    whole = (gate.feed("".join(whole_pieces)) + gate.flush()).rstrip()
                    if whole:
                        whole = self._check_held(tier, prompt, given, whole, gate)
                        produced = True
                        yield start
                        yield whole
                while not held and not gate.closed:
                    piece = await self._next(pieces, stops_at)
                    shown = gate.feed(piece) if piece is not None else gate.flush()
                    if shown:
                        if not produced:
                            produced = True
                            yield start
                        yield shown
                    if piece is None:
                        break
                if not produced:
                    raise FallThroughError(f"{tier.generator.provider} streamed no text", reason="empty")
            except TimeoutError:
                error: GenerationError = _timed_out(tier, budget)
            except GenerationError as exc:
                error = exc
            else:
                self._succeeded(tier, self._clock() - started)
                return
            finally:
                await pieces.aclose()  # type: ignore[attr-defined]
                self._count_ungrounded(tier, gate)
            self._failed(tier, error)
            if produced:
                raise StreamInterrupted(f"{tier.generator.provider} stopped mid-answer: {error.reason}")
            await self._wait_to_retry(tier, error, attempt, ends_at)
            attempt += 1

    async def _next(self, pieces: AsyncIterator[str], stops_at: float) -> str | None:
        """The next piece, or None at the end; a `TimeoutError` past `stops_at`."""
        try:
            return await asyncio.wait_for(anext(pieces), max(0.001, stops_at - self._clock()))
        except StopAsyncIteration:
            return None

    def _check_held(self, tier: Tier, prompt: Prompt, given: Prompt, text: str, gate: SentenceGate) -> str:
        """What of a held answer may be shown: all of it, unless the tier is a small model's (`hold`), whose
        answer must rephrase what it was `given` and keep the facts of the passages' opening evidence."""
        if not (tier.hold and tier.checked and self.guard.mode == "strict"):
            return text
        kept = rephrased(given, text)
        if kept != text and not gate.dropped:  # withheld or shortened: counted once, as the gate counts
            self.stats.ungrounded(tier.generator.provider)
        text = kept
        if not text:
            raise FallThroughError(
                f"{tier.generator.provider} did not keep to what it was shown", reason="ungrounded"
            )
        if not answers_kind(prompt.question, text):
            raise FallThroughError(
                f"{tier.generator.provider} did not state what was asked", reason="unanswered"
            )
        if dropped := left_out(prompt, text):
            raise FallThroughError(
                f"{tier.generator.provider} left out {', '.join(f.text for f in dropped[:5])}",
                reason="unanswered",
            )
        return text

    def _gate(self, tier: Tier, prompt: Prompt) -> SentenceGate:
        return self.guard.gate(prompt, tier.generator.provider, check=tier.checked)

    def _count_ungrounded(self, tier: Tier, gate: SentenceGate) -> None:
        """An answer the guard withheld (the tier falls through) or cut short."""
        if gate.dropped:
            self.stats.ungrounded(tier.generator.provider)

    async def aclose(self) -> None:
        for tier in self.tiers:
            await tier.generator.aclose()


def _exhausted(failures: list[str]) -> AllTiersFailed:
    """Its reason is the last tier's: the agent tells "nothing in the passages answers this" (`no_match`)
    from a failure."""
    last = failures[-1].rpartition(": ")[2] if failures else "none_usable"
    return AllTiersFailed("every tier failed: " + ", ".join(failures or ["none usable"]), reason=last)


def _timed_out(tier: Tier, budget: float) -> RetryableError:
    return RetryableError(f"{tier.generator.provider} timed out after {budget:.1f}s", reason="timeout")
