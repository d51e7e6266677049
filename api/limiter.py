"""Per-IP rate limits (slowapi), one limiter per app so that apps and tests never share counters."""

from __future__ import annotations

import inspect
import threading

from limits.storage import MemoryStorage
from slowapi import Limiter
from starlette.requests import Request

SWEEP_SECONDS = 1.0


class SweepingMemoryStorage(MemoryStorage):
    """limits' in-process counters, with expired ones swept once a second.

    The stock storage re-arms a 10 ms timer thread whenever its last one has finished: under steady traffic
    that is a new thread about every ten milliseconds, which measured as the largest single cost of a cached
    answer. Expiry itself stays exact: counters are checked against their expiry when read.
    """

    STORAGE_SCHEME = ["sweeping-memory"]

    def _MemoryStorage__schedule_expiry(self) -> None:  # overrides the stock (name-mangled) method
        if not self.timer.is_alive():
            self.timer = threading.Timer(SWEEP_SECONDS, self._MemoryStorage__expire_events)  # type: ignore[attr-defined]
            self.timer.daemon = True
            self.timer.start()


def client_address(request: Request) -> str:
    """The visitor's address (as resolved from TRUSTED_PROXIES by the proxy-headers middleware)."""
    return request.client.host if request.client and request.client.host else "127.0.0.1"


# slowapi inspects the key function's signature on every request; a stated signature makes that a lookup.
client_address.__signature__ = inspect.signature(client_address)  # type: ignore[attr-defined]


def build_limiter(redis_url: str | None = None, prefix: str = "kbchat") -> Limiter:
    """Counters in this process, or in Redis so that a limit holds across every replica."""
    # headers_enabled adds Retry-After and X-RateLimit-* to responses, 429s included.
    return Limiter(
        key_func=client_address,
        headers_enabled=True,
        storage_uri=redis_url or "sweeping-memory://",
        key_prefix=prefix,
    )
