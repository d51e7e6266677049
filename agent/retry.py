"""Exponential backoff for transient remote failures: delay x 2^attempt, retryable errors only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from agent.errors import RetryableError

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        return self.base_delay * 2.0**attempt

    async def run(self, call: Callable[[], Awaitable[T]], *, tier: str) -> T:
        """Run `call`; after a RetryableError wait and try again, up to max_retries times."""
        attempt = 0
        while True:
            try:
                return await call()
            except RetryableError as exc:
                if attempt >= self.max_retries:
                    raise
                delay = self.delay(attempt)
                log.warning(
                    "generation_retry", tier=tier, attempt=attempt + 1, delay_s=delay, reason=str(exc)
                )
                await self.sleep(delay)
                attempt += 1
