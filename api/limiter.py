"""Per-IP rate limits (slowapi), one limiter per app so that apps and tests never share counters."""

from __future__ import annotations

from slowapi import Limiter
from slowapi.util import get_remote_address


def build_limiter(storage_uri: str = "memory://") -> Limiter:
    # headers_enabled adds Retry-After and X-RateLimit-* to responses, 429s included.
    return Limiter(key_func=get_remote_address, headers_enabled=True, storage_uri=storage_uri)
