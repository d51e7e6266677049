"""A request's rate-limit budgets, spent by the route itself once it has accepted the request."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Scope

from api.rate_limits import RateLimited, RateLimits, Rule, Verdict, client_address

# request.state attribute: the verdict of the budget this request spent, for the rate-limit headers.
_VERDICT = "rate_limit"


class Budget:
    """Spent at the start of a route's body, after FastAPI has validated the request and run the route's
    own checks (origin, admin token): an invalid request, a refused page or a wrong token never uses up a
    visitor's budget. A middleware in front of the routes could not know any of that yet."""

    def __init__(self, request: Request) -> None:
        self._request = request

    async def spend(self, rule: Rule) -> None:
        """Counts this request against `rule` for the visitor's address; raises `RateLimited` past it."""
        limits: RateLimits = self._request.app.state.rate_limits
        verdict = await limits.spend(rule, client_address(self._request))
        setattr(self._request.state, _VERDICT, verdict)  # RateLimitHeadersMiddleware adds it to the response
        if not verdict.allowed:
            raise RateLimited(verdict)


def spent_verdict(scope: Scope) -> Verdict | None:
    """The verdict of the budget this request spent, if it spent one."""
    state: dict[str, object] = scope.get("state") or {}
    verdict = state.get(_VERDICT)
    return verdict if isinstance(verdict, Verdict) else None
