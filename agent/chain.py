"""Tries each tier in order until one answers; falls through on our `GenerationError` family only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import structlog

from agent.errors import AllTiersFailed, GenerationError
from agent.generators.base import Generator, TierStatus
from agent.prompting import Prompt
from agent.retry import RetryPolicy

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Tier:
    generator: Generator
    retry: RetryPolicy | None = None  # remote tiers retry transient failures; local ones never do


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    provider: str
    model: str
    degraded: bool  # a tier after the best usable one answered


class GeneratorChain:
    def __init__(self, tiers: list[Tier]) -> None:
        if not tiers:
            raise ValueError("a generator chain needs at least one tier")
        self.tiers = tiers

    def describe(self) -> list[tuple[Generator, TierStatus]]:
        return [(tier.generator, tier.generator.status()) for tier in self.tiers]

    def active(self) -> Generator | None:
        """The tier that answers when nothing fails: the first usable one."""
        return next((g for g, status in self.describe() if status.usable), None)

    def signature(self) -> str:
        """Identifies what would answer; part of the answer-cache key."""
        return "|".join(f"{t.generator.provider}:{t.generator.model}" for t in self.tiers)

    async def generate(self, prompt: Prompt) -> Generation:
        best = self.active()
        failures: list[str] = []
        for tier in self.tiers:
            generator = tier.generator
            if not generator.status().usable:
                continue
            started = time.perf_counter()
            try:
                if tier.retry is not None:
                    text = await tier.retry.run(partial(generator.generate, prompt), tier=generator.provider)
                else:
                    text = await generator.generate(prompt)
            except GenerationError as exc:
                failures.append(f"{generator.provider}: {exc.kind}")
                log.warning(
                    "generation_tier_failed",
                    tier=generator.provider,
                    kind=exc.kind,
                    reason=str(exc),
                    elapsed_s=round(time.perf_counter() - started, 3),
                )
                continue
            return Generation(text, generator.provider, generator.model, degraded=generator is not best)
        raise AllTiersFailed("every tier failed: " + ", ".join(failures or ["none usable"]))

    async def aclose(self) -> None:
        for tier in self.tiers:
            await tier.generator.aclose()
