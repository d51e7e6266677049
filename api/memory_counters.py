"""Rate-limit counters in this process, as a storage for the `limits` library's async strategies."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from limits.aio.storage import Storage

SWEEP_SECONDS = 1.0


@dataclass(slots=True)
class _Window:
    count: int
    expires_at: float


class MemoryCounters(Storage):
    """Fixed-window counters held in a dict, with expired ones swept at most once a second.

    Built on the documented extension point (a `limits.aio.storage.Storage` subclass) because limits' own
    async memory storage starts a task on every hit that walks every counter: 0.27 ms a check with 1,000
    visitors in the window, 2.9 ms with 10,000 (measured here), on the event loop. Expiry stays exact: a
    counter is compared with its expiry whenever it is read. Every method runs on the event loop without
    awaiting in between, so no lock is needed.
    """

    STORAGE_SCHEME = ["async+kb-memory"]

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        clock: Callable[[], float] = time.time,
        **options: float | str | bool,
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._windows: dict[str, _Window] = {}
        self._clock = clock
        self._next_sweep = 0.0

    def __len__(self) -> int:
        """Counters held, expired ones not yet swept included."""
        return len(self._windows)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError  # nothing here talks to a server: limits asks every storage which errors it wraps

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        self._sweep(now)
        window = self._live(key, now)
        if window is None:
            self._windows[key] = _Window(amount, now + expiry)
            return amount
        window.count += amount
        return window.count

    async def get(self, key: str) -> int:
        window = self._live(key, self._clock())
        return window.count if window else 0

    async def get_expiry(self, key: str) -> float:
        now = self._clock()
        window = self._live(key, now)
        return window.expires_at if window else now

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        removed = len(self._windows)
        self._windows.clear()
        return removed

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    def _live(self, key: str, now: float) -> _Window | None:
        window = self._windows.get(key)
        if window is not None and window.expires_at <= now:
            del self._windows[key]
            return None
        return window

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        for key in [key for key, window in self._windows.items() if window.expires_at <= now]:
            del self._windows[key]
