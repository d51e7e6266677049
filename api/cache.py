"""The answer cache in front of the agent, keyed by MD5: in process (a TTL cache behind a lock), or in Redis
so that every replica shares it. Async, so that a networked cache never blocks the event loop."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from cachetools import Cache, TTLCache

from agent.agent import Answer
from rag.retriever import Passage

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


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    key: str
    question: str  # as asked first: what a curated answer's change is compared with
    answer: Answer


class AnswerCache(Protocol):
    ttl: int
    max_entries: int | None  # None: bounded by the TTL and the server's memory policy

    @property
    def enabled(self) -> bool: ...

    async def get(self, key: str) -> Answer | None: ...

    async def set(self, key: str, answer: Answer, question: str = "") -> None: ...

    def entries(self) -> AsyncIterator[CachedAnswer]:
        """The live entries (a snapshot, in batches for a networked cache)."""
        ...

    async def discard(self, keys: Sequence[str]) -> int:
        """Removes these entries; returns how many were there."""
        ...

    async def clear(self) -> int:
        """Empty the cache; returns how many live entries it held."""
        ...

    async def counts(self) -> CacheCounts: ...

    def size_hint(self) -> int | None:
        """Entries held, if known without a scan (for /health, which is polled often)."""
        ...


class MemoryAnswerCache:
    def __init__(self, ttl: int, max_entries: int, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries: int | None = max_entries
        self._cache: TTLCache[str, tuple[str, Answer]] = TTLCache(maxsize=max_entries, ttl=ttl, timer=timer)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    async def get(self, key: str) -> Answer | None:
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                self._misses += 1
                return None
            self._hits += 1
            return value[1]

    async def set(self, key: str, answer: Answer, question: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            self._cache[key] = (question, answer)

    async def entries(self) -> AsyncIterator[CachedAnswer]:
        with self._lock:
            live = [CachedAnswer(key, question, answer) for key, (question, answer) in self._cache.items()]
        for entry in live:
            yield entry

    async def discard(self, keys: Sequence[str]) -> int:
        with self._lock:
            return sum(1 for key in keys if self._cache.pop(key, None) is not None)

    async def clear(self) -> int:
        with self._lock:
            removed = sum(1 for _ in self._cache)  # iteration skips expired entries
            self._cache.clear()
            return removed

    def size_hint(self) -> int | None:
        return len(self._cache)

    async def counts(self) -> CacheCounts:
        with self._lock:
            # Cache.__len__ counts entries not yet purged; iterating a TTLCache yields live ones only.
            total = Cache.__len__(self._cache)
            valid = sum(1 for _ in self._cache)
            return CacheCounts(total=total, valid=valid, hits=self._hits, misses=self._misses)


class RedisAnswerCache:
    """Entries are Redis keys that expire by themselves; hit and miss counts are shared counters."""

    def __init__(self, redis: Any, prefix: str, ttl: int) -> None:
        self.ttl = ttl
        self.max_entries: int | None = None
        self._redis = redis
        self._entries = f"{prefix}:answer:"
        self._stats = f"{prefix}:answer-stats"

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    async def get(self, key: str) -> Answer | None:
        raw = await self._redis.get(self._entries + key)
        await self._redis.hincrby(self._stats, "misses" if raw is None else "hits", 1)
        return None if raw is None else _decode(raw)

    async def set(self, key: str, answer: Answer, question: str = "") -> None:
        if self.enabled:
            await self._redis.set(self._entries + key, _encode(answer, question), ex=self.ttl)

    async def entries(self) -> AsyncIterator[CachedAnswer]:
        async for batch in self._batches():
            for name, raw in zip(batch, await self._redis.mget(batch), strict=True):
                if raw is not None:  # expired since the scan
                    question, answer = _decoded(raw)
                    yield CachedAnswer(name.decode()[len(self._entries) :], question, answer)

    async def discard(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(await self._redis.unlink(*(self._entries + key for key in keys)))

    async def clear(self) -> int:
        removed = 0
        async for batch in self._batches():
            removed += int(await self._redis.unlink(*batch))
        return removed

    def size_hint(self) -> int | None:
        return None  # counting would scan the keys: /cache/stats does that

    async def counts(self) -> CacheCounts:
        live = 0
        async for batch in self._batches():
            live += len(batch)
        stats = await self._redis.hgetall(self._stats)
        hits, misses = int(stats.get(b"hits", 0)), int(stats.get(b"misses", 0))
        return CacheCounts(total=live, valid=live, hits=hits, misses=misses)

    async def _batches(self) -> Any:
        batch: list[bytes] = []
        async for name in self._redis.scan_iter(match=self._entries + "*", count=500):
            batch.append(name)
            if len(batch) == 500:
                yield batch
                batch = []
        if batch:
            yield batch


def _encode(answer: Answer, question: str) -> str:
    return json.dumps({"question": question, "answer": asdict(answer)}, separators=(",", ":"))


def _decode(raw: bytes) -> Answer:
    return _decoded(raw)[1]


def _decoded(raw: bytes) -> tuple[str, Answer]:
    data = json.loads(raw)
    question, fields = (
        data.get("question", ""),
        data.get("answer", data),
    )  # entries of earlier versions: the answer
    fields["sources"] = tuple(Passage(**passage) for passage in fields["sources"])
    return question, Answer(**fields)
