"""Which web pages may use the chatbot: CORS for browsers, and a 403 for chat requests from elsewhere."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from starlette.middleware.cors import CORSMiddleware

# The widget shows friendly lines for limits and reads the request id: let the page see these headers.
EXPOSED_HEADERS = [
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Request-ID",
]


def parse_origins(raw: str) -> list[str]:
    return [origin.strip().rstrip("/").lower() for origin in raw.split(",") if origin.strip()]


def install_cors(app: FastAPI, origins: list[str]) -> None:
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins or ["*"],
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )


async def check_origin(request: Request) -> None:
    """Browsers always send `Origin` on cross-site POSTs: one from a page not listed is refused outright,
    not merely left unreadable by CORS (the question would still cost us a model call)."""
    if (origin := refused_origin(request)) is not None:
        raise HTTPException(
            status_code=403, detail=f"This chatbot does not accept requests from {origin[:100]}."
        )


def refused_origin(request: Request) -> str | None:
    """The request's origin when ALLOWED_ORIGINS does not list it (the service's own pages always pass)."""
    allowed: list[str] = request.app.state.allowed_origins
    origin = request.headers.get("origin")
    if origin is None or not allowed:
        return None
    origin = origin.rstrip("/").lower()
    own = str(request.base_url).rstrip("/").lower()  # the service's own pages (/demo) are same-origin
    return origin if origin not in allowed and origin != own else None
