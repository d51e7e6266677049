"""Why a generator tier gave no answer. The chain moves to the next tier on any of these, only these.

    GenerationError
     ├── TierUnavailable     not configured, weights not on disk, refused to load
     ├── RetryableError      transient upstream trouble: 429, 5xx, timeout, connection error
     └── FallThroughError    permanent for this request: other 4xx, safety block, empty or malformed reply

Each adapter classifies its library's exceptions into this tree once, where they are raised.
"""

from __future__ import annotations


class GenerationError(Exception):
    kind = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TierUnavailable(GenerationError):
    kind = "unavailable"


class RetryableError(GenerationError):
    kind = "retryable"


class FallThroughError(GenerationError):
    kind = "fall_through"


class AllTiersFailed(GenerationError):
    """No tier, not even the extractive one, produced an answer."""

    kind = "exhausted"
