"""robots.txt, read with Protego (RFC 9309: longest match, `*` and `$` patterns, fractional Crawl-delay)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog
from protego import Protego

log = structlog.get_logger(__name__)

# RFC 9309: a crawler must read at least 500 KiB of robots.txt; what follows may be ignored.
ROBOTS_MAX_BYTES = 500 * 1024


@dataclass(frozen=True, slots=True)
class HostRules:
    """What one origin's robots.txt allows this crawler, and how long to wait between two requests."""

    rules: Protego | None  # None: nothing may be fetched (robots.txt could not be read)
    delay: float = 0.0

    @classmethod
    def allow_all(cls) -> HostRules:
        return cls(Protego.parse(""))

    @classmethod
    def disallow_all(cls) -> HostRules:
        return cls(None)

    @classmethod
    def parse(cls, text: str, user_agent: str, delay_max: float, origin: str) -> HostRules:
        rules = Protego.parse(text[:ROBOTS_MAX_BYTES])
        asked = rules.crawl_delay(user_agent) or 0.0
        # float() accepts "inf" and "nan": neither may stop the crawl or turn the wait off.
        delay = asked if math.isfinite(asked) and asked > 0 else 0.0
        if delay > delay_max:
            log.info("crawl_delay_capped", origin=origin, asked=delay, used=delay_max)
            delay = delay_max
        return cls(rules, delay)

    def allows(self, url: str, user_agent: str) -> bool:
        return self.rules is not None and self.rules.can_fetch(url, user_agent)
