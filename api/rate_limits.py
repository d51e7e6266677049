"""Per-IP rate limits on the `limits` library's async API: one budget per rule and visitor, counted in this
process or in Redis (shared by every replica); no check ever blocks the event loop."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from limits import RateLimitItem, parse, parse_many
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.requests import HTTPConnection

from api.memory_counters import MemoryCounters
from api.settings import ApiSettings


class Rule(StrEnum):
    """A budget. Its value is the counters' scope: routes that spend the same rule share one budget."""

    ROOT = "root"
    CHAT = "chat"  # POST /chat, /chat/stream and /v1/chat/completions
    HISTORY = "history"  # GET and DELETE /history/{session_id}, whatever the session
    LLM_STATS = "llm-stats"
    CACHE_STATS = "cache-stats"
    CACHE_CLEAR = "cache-clear"
    ADMIN_REINDEX = "admin-reindex"  # POST and GET /admin/reindex
    ADMIN_KNOWLEDGE = "admin-knowledge"
    FEEDBACK = "feedback"  # POST /feedback: the chat limits, counted apart so that ratings spend no questions
    ADMIN_RECORDS = "admin-records"  # gaps, curated answers, conversations, leads
    LEADS = "leads"  # POST /leads: contact requests, a budget of their own
    ADMIN_FAILURES = "admin-auth-failures"  # wrong admin tokens, counted apart from the calls themselves


def budgets(settings: ApiSettings) -> dict[Rule, list[RateLimitItem]]:
    """Each rule's limits from its RATE_LIMIT_* setting (a setting may hold several: `20/minute;100/hour`)."""
    return {
        Rule.ROOT: parse_many(settings.rate_limit_root),
        Rule.CHAT: parse_many(settings.rate_limit_chat),
        Rule.HISTORY: parse_many(settings.rate_limit_history),
        Rule.LLM_STATS: parse_many(settings.rate_limit_stats),
        Rule.CACHE_STATS: parse_many(settings.rate_limit_cache_stats),
        Rule.CACHE_CLEAR: parse_many(settings.rate_limit_cache_clear),
        Rule.ADMIN_REINDEX: parse_many(settings.rate_limit_admin),
        Rule.ADMIN_KNOWLEDGE: parse_many(settings.rate_limit_admin),
        Rule.FEEDBACK: parse_many(settings.rate_limit_chat),
        Rule.ADMIN_RECORDS: parse_many(settings.rate_limit_admin),
        Rule.LEADS: parse_many(settings.rate_limit_leads),
        Rule.ADMIN_FAILURES: [parse(settings.rate_limit_admin_failures)],
    }


def client_address(connection: HTTPConnection) -> str:
    """The visitor's address (as resolved from TRUSTED_PROXIES by the proxy-headers middleware)."""
    client = connection.client
    return client.host if client and client.host else "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of spending a budget, and what the response tells the visitor about it."""

    allowed: bool
    limit: RateLimitItem  # the limit refused, or else the one of the shortest window
    remaining: int
    reset: float  # when that limit's window ends (epoch seconds)

    def headers(self, now: float) -> list[tuple[bytes, bytes]]:
        # The values slowapi gave (clients and the widget read them): the reset a second past the window's
        # end, and Retry-After in whole seconds until then.
        reset = 1 + self.reset
        return [
            (b"x-ratelimit-limit", str(self.limit.amount).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
            (b"retry-after", str(int(reset - now)).encode()),
        ]


class RateLimited(Exception):
    """A budget is spent: rendered as a 429 by the error handlers."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"Rate limit exceeded: {verdict.limit}")
        self.verdict = verdict


class RateLimits:
    def __init__(self, storage: Storage, prefix: str, limits: Mapping[Rule, list[RateLimitItem]]) -> None:
        self._strategy = FixedWindowRateLimiter(storage)
        self._prefix = prefix
        self._limits = limits

    async def spend(self, rule: Rule, address: str) -> Verdict:
        """Counts one request against each of the rule's limits, stopping at the first one exhausted."""
        shown: RateLimitItem | None = None
        allowed = True
        for limit in self._limits[rule]:
            if shown is None or limit < shown:  # a shorter window
                shown = limit
            if not await self._strategy.hit(limit, self._prefix, address, rule.value):
                shown, allowed = limit, False
                break
        assert shown is not None, f"rule {rule} has no limit"  # parse_many never returns an empty list
        reset, remaining = await self._strategy.get_window_stats(shown, self._prefix, address, rule.value)
        return Verdict(allowed, shown, remaining, reset)

    async def seconds_left(self, rule: Rule, address: str) -> int | None:
        """Without counting: None while the rule's first limit has room, else whole seconds until it has."""
        limit = self._limits[rule][0]
        if await self._strategy.test(limit, self._prefix, address, rule.value):
            return None
        reset, _ = await self._strategy.get_window_stats(limit, self._prefix, address, rule.value)
        return max(1, int(reset - time.time()) + 1)

    async def count(self, rule: Rule, address: str) -> None:
        """One more against the rule's first limit, with no verdict (for wrong admin tokens)."""
        await self._strategy.hit(self._limits[rule][0], self._prefix, address, rule.value)


def build_rate_limits(settings: ApiSettings, redis: Any = None) -> RateLimits:
    """Counters in Redis when the app has a client (every replica then shares the budgets), else here."""
    storage: Storage = MemoryCounters()
    if redis is not None:
        # limits' own client on the app's connection pool (its documented `connection_pool` option): no second
        # pool, and the app's client closes it.
        pool: dict[str, Any] = {"connection_pool": redis.connection_pool}
        storage = RedisStorage("async+redis://", implementation="redispy", **pool)
    return RateLimits(storage, settings.redis_prefix, budgets(settings))
