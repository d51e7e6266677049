"""What each tier did: attempts, outcomes, retries, latency, and how often it was the one that answered."""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LATENCY_WINDOW = 1000  # recent successful calls kept per tier for mean and p95


@dataclass
class TierStats:
    attempts: int = 0
    successes: int = 0
    retries: int = 0
    answered: int = 0
    ungrounded: int = 0  # answers with a fact their sources lack: withheld (a failure) or cut short
    failures: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_error: str | None = None


class ChainStats:
    def __init__(self, providers: list[str]) -> None:
        self._lock = threading.Lock()
        self._tiers = {provider: TierStats() for provider in providers}
        self.requests = 0
        self.unanswered = 0
        self.degraded = 0

    def attempt(self, provider: str) -> None:
        with self._lock:
            self._tiers[provider].attempts += 1

    def success(self, provider: str, seconds: float) -> None:
        with self._lock:
            tier = self._tiers[provider]
            tier.successes += 1
            tier.latencies.append(seconds)

    def failure(self, provider: str, reason: str) -> None:
        with self._lock:
            tier = self._tiers[provider]
            tier.failures[reason] += 1
            tier.last_error = reason

    def ungrounded(self, provider: str) -> None:
        with self._lock:
            self._tiers[provider].ungrounded += 1

    def retry(self, provider: str) -> None:
        with self._lock:
            self._tiers[provider].retries += 1

    def skip(self, provider: str, reason: str) -> None:
        with self._lock:
            self._tiers[provider].skipped[reason] += 1

    def request_done(self, answered_by: str | None, *, degraded: bool = False) -> None:
        with self._lock:
            self.requests += 1
            self.degraded += degraded
            if answered_by is None:
                self.unanswered += 1
            else:
                self._tiers[answered_by].answered += 1

    def last_error(self, provider: str) -> str | None:
        with self._lock:
            return self._tiers[provider].last_error

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            requests = self.requests
            tiers = {}
            for provider, tier in self._tiers.items():
                ordered = sorted(tier.latencies)
                tiers[provider] = {
                    "attempts": tier.attempts,
                    "successes": tier.successes,
                    "failures": dict(tier.failures),
                    "failures_total": sum(tier.failures.values()),
                    "retries": tier.retries,
                    "skipped": dict(tier.skipped),
                    "answered": tier.answered,
                    "ungrounded": tier.ungrounded,
                    "answered_share": round(tier.answered / requests, 4) if requests else 0.0,
                    "latency_mean_s": round(sum(ordered) / len(ordered), 4) if ordered else None,
                    "latency_p95_s": round(percentile(ordered, 0.95), 4) if ordered else None,
                    "last_error": tier.last_error,
                }
            return {
                "requests": requests,
                "unanswered": self.unanswered,
                "fallback_rate": round(self.degraded / requests, 4) if requests else 0.0,
                "tiers": tiers,
            }


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
