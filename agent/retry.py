"""When to try a remote tier again: exponential backoff with jitter, honouring `Retry-After`."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 1.0
    retry_after_cap: float = (
        10.0  # an upstream asking for a longer wait is not retried: the next tier answers
    )
    jitter: float = 0.25  # up to +25%, so that replicas and visitors do not retry in lockstep
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None when it is not worth waiting."""
        backoff = self.base_delay * 2.0**attempt
        if retry_after is not None:
            if retry_after > self.retry_after_cap:
                return None
            backoff = max(backoff, retry_after)
        return backoff * (1.0 + self.rng.uniform(0.0, self.jitter))


def parse_retry_after(headers: Mapping[str, str] | Any, body: Any = None) -> float | None:
    """Seconds from a `Retry-After` header (seconds or HTTP date) or a Google `RetryInfo` in the body."""
    raw = None
    if headers is not None:
        try:
            raw = headers.get("retry-after") or headers.get("Retry-After")
        except AttributeError:
            raw = None
    if raw:
        raw = str(raw).strip()
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            from datetime import UTC, datetime

            return max(0.0, (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None
    return _google_retry_delay(body)


def _google_retry_delay(body: Any) -> float | None:
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = str(detail.get("retryDelay", "")).rstrip("s")
            try:
                return max(0.0, float(delay))
            except ValueError:
                return None
    return None
