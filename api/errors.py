"""One place that turns failures into HTTP answers; no stack trace or upstream body ever leaves."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from slowapi import _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


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
    return JSONResponse({"error": f"Invalid request: {summary}", "detail": errors}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimitExceeded)
    # slowapi's own handler: {"error": "Rate limit exceeded: 20 per 1 minute"} plus Retry-After.
    return _rate_limit_exceeded_handler(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    return JSONResponse({"error": "Internal server error. Please try again later."}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
