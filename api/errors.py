"""One place that turns failures into HTTP answers; no stack trace or upstream body ever leaves."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.owner import RecordsError, RecordsUnavailable
from api.rate_limits import RateLimited

log = structlog.get_logger(__name__)


_OPENAI_TYPES = {403: "permission_error", 422: "invalid_request_error", 429: "rate_limit_error"}


def error_body(request: Request, message: str, status: int) -> dict[str, Any]:
    return error_payload(request.url.path, message, status)


def error_payload(path: str, message: str, status: int) -> dict[str, Any]:
    """`{"error": message}`; on the OpenAI-compatible surface, the shape OpenAI clients read."""
    if path.startswith("/v1/"):
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"error": message}


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{location}: {message}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    messages = [_describe(e) for e in exc.errors()]
    errors = [{"field": m.split(":", 1)[0], "message": m} for m in messages]
    summary = "; ".join(messages) or "invalid request"
    # The offending input is not echoed back: it may be large, or something the visitor should not see again.
    body = error_body(request, f"Invalid request: {summary}", 422)
    return JSONResponse({**body, "detail": errors}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body(request, str(exc.detail), exc.status_code),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    return rate_limited_response(request, exc)


def rate_limited_response(request: Request, exc: RateLimited) -> Response:
    """`{"error": "Rate limit exceeded: 20 per 1 minute"}`, counted under its route; the rate-limit headers
    are added by RateLimitHeadersMiddleware, as on every response of a request that spent a budget."""
    route = getattr(request.scope.get("route"), "path", "unmatched")
    request.app.state.metrics.rate_limited.labels(route).inc()
    return JSONResponse(error_body(request, str(exc), 429), status_code=429)


async def _records_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordsError)
    headers = {"Retry-After": "30"} if isinstance(exc, RecordsUnavailable) else None
    return JSONResponse(error_body(request, str(exc), exc.status), status_code=exc.status, headers=headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    return JSONResponse(
        error_body(request, "Internal server error. Please try again later.", 500), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(RecordsError, _records_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
