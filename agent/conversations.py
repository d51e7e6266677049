"""Conversation memory: the last turns of each visitor's session, kept for a while.

Behind a small interface so that a shared store (Redis) can replace the in-process one.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Turn:
    question: str
    answer: str
    sources: tuple[dict[str, object], ...] = ()


class ConversationStore(Protocol):
    """Async, so that a networked store never blocks the event loop."""

    async def turns(self, session_id: str) -> list[Turn]:
        """Oldest first; empty for an unknown or expired session."""
        ...

    async def append(self, session_id: str, turn: Turn) -> None: ...

    async def delete(self, session_id: str) -> int:
        """Forget a session; returns how many turns it held."""
        ...


class MemoryConversations:
    """In-process store: the last `max_turns` turns per session, forgotten `ttl` seconds after the
    session's last turn. Expired sessions are purged as new turns come in, so memory stays bounded."""

    def __init__(self, max_turns: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_turns = max_turns
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[float, deque[Turn]]] = {}
        self._purged_at = 0.0

    async def turns(self, session_id: str) -> list[Turn]:
        with self._lock:
            entry = self._live(session_id)
            return list(entry[1]) if entry else []

    async def append(self, session_id: str, turn: Turn) -> None:
        if self.max_turns == 0:
            return
        with self._lock:
            self._purge()
            entry = self._live(session_id)
            turns = entry[1] if entry else deque(maxlen=self.max_turns)
            turns.append(turn)
            self._sessions[session_id] = (self._clock() + self.ttl, turns)

    async def delete(self, session_id: str) -> int:
        with self._lock:
            entry = self._live(session_id)
            self._sessions.pop(session_id, None)
            return len(entry[1]) if entry else 0

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for expires, _ in self._sessions.values() if expires > now)

    def _live(self, session_id: str) -> tuple[float, deque[Turn]] | None:
        entry = self._sessions.get(session_id)
        if entry is not None and entry[0] <= self._clock():
            del self._sessions[session_id]
            return None
        return entry

    def _purge(self) -> None:
        now = self._clock()
        if now - self._purged_at < 1.0:  # a full scan per turn would cost more than it saves
            return
        self._purged_at = now
        for session_id in [s for s, (expires, _) in self._sessions.items() if expires <= now]:
            del self._sessions[session_id]


class RedisConversations:
    """Shared by every replica: a Redis list per session, trimmed to the last `max_turns` turns and
    expiring `ttl` seconds after its last turn (Redis deletes it then)."""

    def __init__(self, redis: Any, prefix: str, max_turns: int, ttl: float) -> None:
        self.max_turns = max_turns
        self.ttl = ttl
        self._redis = redis
        self._prefix = f"{prefix}:conversation:"

    async def turns(self, session_id: str) -> list[Turn]:
        raw = await self._redis.lrange(self._prefix + session_id, 0, -1)
        return [_turn(item) for item in raw]

    async def append(self, session_id: str, turn: Turn) -> None:
        if self.max_turns == 0:
            return
        key = self._prefix + session_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(asdict(turn), separators=(",", ":")))
            pipe.ltrim(key, -self.max_turns, -1)
            pipe.expire(key, max(1, math.ceil(self.ttl)))
            await pipe.execute()

    async def delete(self, session_id: str) -> int:
        key = self._prefix + session_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.llen(key)
            pipe.delete(key)
            held, _ = await pipe.execute()
        return int(held)


def _turn(raw: bytes) -> Turn:
    data = json.loads(raw)
    return Turn(question=data["question"], answer=data["answer"], sources=tuple(data.get("sources", ())))
