"""The answer cache in front of the agent: a TTL cache behind a lock, keyed by MD5."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import Cache, TTLCache

V = TypeVar("V")
_SPACE = re.compile(r"\s+")


def normalize_question(question: str) -> str:
    return _SPACE.sub(" ", question).strip().lower()


def cache_key(question: str, context: str) -> str:
    """MD5 is fine here: a lookup key, not a security boundary."""
    return hashlib.md5(f"{normalize_question(question)}\x00{context}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheCounts:
    total: int
    valid: int
    hits: int
    misses: int


class AnswerCache(Generic[V]):
    def __init__(self, ttl: int, max_entries: int, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: TTLCache[str, V] = TTLCache(maxsize=max_entries, ttl=ttl, timer=timer)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                self._misses += 1
            else:
                self._hits += 1
            return value

    def set(self, key: str, value: V) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._cache[key] = value

    def clear(self) -> int:
        with self._lock:
            removed = sum(1 for _ in self._cache)  # iteration skips expired entries
            self._cache.clear()
            return removed

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def counts(self) -> CacheCounts:
        with self._lock:
            # Cache.__len__ counts entries not yet purged; iterating a TTLCache yields live ones only.
            total = Cache.__len__(self._cache)
            valid = sum(1 for _ in self._cache)
            return CacheCounts(total=total, valid=valid, hits=self._hits, misses=self._misses)
