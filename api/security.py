"""Who may call the admin endpoints: a bearer token, or, without one configured, this machine only."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from typing import Any

import structlog
from fastapi import HTTPException, Request
from limits import parse

from api.deps import ServicesDep
from api.limiter import client_address
from api.schemas import ErrorBody

log = structlog.get_logger(__name__)

_BEARER = "bearer "
_FAILURES = "admin-auth-failures"  # the limiter's namespace for wrong tokens, per client address


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
    # Wrong tokens are counted per address (in the app's limiter: Redis when replicas share one), and an
    # address past its budget is refused before its token is even compared: guessing gets nowhere.
    counter = request.app.state.limiter.limiter
    budget = parse(services.settings.api.rate_limit_admin_failures)
    address = client_address(request)
    if not await asyncio.to_thread(counter.test, budget, _FAILURES, address):
        reset, _ = await asyncio.to_thread(counter.get_window_stats, budget, _FAILURES, address)
        raise HTTPException(
            status_code=429,
            detail="Too many wrong admin tokens from this address; try again later.",
            headers={"Retry-After": str(max(1, int(reset - time.time()) + 1))},
        )
    given = header[len(_BEARER) :].strip().encode()
    if not hmac.compare_digest(given, token.get_secret_value().encode()):
        await asyncio.to_thread(counter.hit, budget, _FAILURES, address)
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
