"""A circuit breaker per remote tier: during an outage, visitors skip the tier instead of waiting on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after `failures` consecutive unhealthy failures; after `reset_seconds` lets one trial
    request through (half open): its success closes the circuit, its failure opens it again."""

    def __init__(
        self, failures: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._state()

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.reset_seconds:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        """May a request use the tier now? In half-open state only one trial at a time is let through."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "open":
                return False
            now = self._clock()
            # A trial that never reported back (cancelled, skipped) must not block the tier forever.
            if self._trial_started is not None and now - self._trial_started < self.reset_seconds:
                return False
            self._trial_started = now
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._trial_started = 0, None, None

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._opened_at is not None or self._failures >= self.threshold:
                self._opened_at, self._trial_started = self._clock(), None
