"""Per-IP rate limits (slowapi), one limiter per app so that apps and tests never share counters."""

from __future__ import annotations

from slowapi import Limiter
from slowapi.util import get_remote_address


def build_limiter(redis_url: str | None = None, prefix: str = "kbchat") -> Limiter:
    """Counters in this process, or in Redis so that a limit holds across every replica."""
    # headers_enabled adds Retry-After and X-RateLimit-* to responses, 429s included.
    return Limiter(
        key_func=get_remote_address,
        headers_enabled=True,
        storage_uri=redis_url or "memory://",
        key_prefix=prefix,
    )
