"""Who may call the admin endpoints: a bearer token, or, without one configured, this machine only."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

import structlog
from fastapi import HTTPException, Request

from api.deps import ServicesDep
from api.rate_limits import RateLimits, Rule, client_address
from api.schemas import ErrorBody

log = structlog.get_logger(__name__)

_BEARER = "bearer "


async def require_admin(request: Request, services: ServicesDep) -> None:
    token = services.settings.api.admin_token
    if token is None:
        # The client as resolved from trusted proxies: behind a proxy on this machine, a visitor is not local.
        if not _is_loopback(request.client.host if request.client else ""):
            raise HTTPException(
                status_code=403,
                detail="Admin calls are accepted from this machine only; set ADMIN_TOKEN to call remotely.",
            )
        return
    header = request.headers.get("authorization", "")
    if not header.lower().startswith(_BEARER):
        raise HTTPException(
            status_code=401,
            detail="Admin calls need an Authorization: Bearer <ADMIN_TOKEN> header.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Wrong tokens are counted per address (in the app's rate limits: Redis when replicas share one), and an
    # address past its budget is refused before its token is even compared: guessing gets nowhere.
    limits: RateLimits = request.app.state.rate_limits
    address = client_address(request)
    wait = await limits.seconds_left(Rule.ADMIN_FAILURES, address)
    if wait is not None:
        raise HTTPException(
            status_code=429,
            detail="Too many wrong admin tokens from this address; try again later.",
            headers={"Retry-After": str(wait)},
        )
    given = header[len(_BEARER) :].strip().encode()
    if not hmac.compare_digest(given, token.get_secret_value().encode()):
        await limits.count(Rule.ADMIN_FAILURES, address)
        log.warning("admin_token_refused", client=address, path=request.url.path)
        raise HTTPException(status_code=403, detail="The admin token is not valid.")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No admin token given (ADMIN_TOKEN is set)"},
    403: {"model": ErrorBody, "description": "Wrong admin token, or not from this machine"},
    429: {"model": ErrorBody, "description": "Too many wrong admin tokens from this address"},
}
