"""Why a generator tier gave no answer. The chain moves to the next tier on any of these, only these.

    GenerationError
     ├── TierUnavailable     not configured, weights not on disk, not enough memory, busy
     ├── RetryableError      transient upstream trouble: 429, 5xx, timeout, connection error
     └── FallThroughError    permanent for this request: other 4xx, safety block, empty or malformed reply

Each adapter classifies its library's exceptions into this tree once, where they are raised. `reason` is a
short code for statistics and logs (`http_503`, `timeout`, `blocked`, ...); `unhealthy` says whether the
failure speaks of the tier's health (and so counts towards its circuit breaker) or only of this request.
"""

from __future__ import annotations

import json


class GenerationError(Exception):
    kind = "error"
    default_unhealthy = True

    def __init__(
        self,
        message: str,
        *,
        reason: str = "error",
        status: int | None = None,
        retry_after: float | None = None,
        unhealthy: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.unhealthy = self.default_unhealthy if unhealthy is None else unhealthy


class TierUnavailable(GenerationError):
    kind = "unavailable"
    default_unhealthy = False


class RetryableError(GenerationError):
    kind = "retryable"


class FallThroughError(GenerationError):
    kind = "fall_through"
    default_unhealthy = False


class AllTiersFailed(GenerationError):
    """No tier, not even the extractive one, produced an answer."""

    kind = "exhausted"


def http_error(provider: str, status: int, retry_after: float | None = None) -> GenerationError:
    """The one mapping of upstream HTTP statuses, shared by the remote adapters."""
    if status == 429 or status >= 500 or status == 408:
        return RetryableError(
            f"{provider} answered HTTP {status}",
            reason=f"http_{status}",
            status=status,
            retry_after=retry_after,
        )
    # A bad key or an unknown model fails every request alike: that is the tier's health, not the request's.
    broken_setup = status in (401, 403, 404)
    return FallThroughError(
        f"{provider} refused the request: HTTP {status}",
        reason=f"http_{status}",
        status=status,
        unhealthy=broken_setup,
    )


def transport_error(provider: str, exc: BaseException) -> GenerationError:
    """Timeouts, dropped connections and unreadable replies, whichever HTTP library raised them."""
    import httpx  # the SDKs' transport: imported with them, not with this module

    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return RetryableError(f"{provider} timed out", reason="timeout")
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return FallThroughError(f"{provider} sent a malformed reply", reason="malformed", unhealthy=True)
    if isinstance(exc, ConnectionError | OSError | httpx.TransportError) or _is_aiohttp_error(exc):
        return RetryableError(f"{provider} connection failed: {type(exc).__name__}", reason="connection")
    return FallThroughError(
        f"{provider} call failed: {type(exc).__name__}", reason="malformed", unhealthy=True
    )


def _is_aiohttp_error(exc: BaseException) -> bool:
    try:
        import aiohttp
    except ImportError:
        return False
    return isinstance(exc, aiohttp.ClientError)
