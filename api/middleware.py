"""Pure ASGI middleware (no BaseHTTPMiddleware on the hot path)."""

from __future__ import annotations

import json
import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.asgi_body import buffer_body
from api.budget import spent_verdict
from api.errors import error_payload

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Binds a request id to every log line of a request and returns it as `X-Request-ID`.

    A well-formed id sent by the client (or a proxy) is kept, so one id follows a request across hops.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, _with_headers(send, [(b"x-request-id", request_id.encode())]))


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send`, adding `extra` response headers that the app did not set itself."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            message["headers"] = headers + [(n, v) for n, v in extra if n not in present]
        await send(message)

    return sending


# Every response: no MIME sniffing, no framing, no referrer leak, no powerful features.
_COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
# JSON and event streams need nothing from a browser; the interactive docs load Swagger UI from a CDN.
_API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_NO_CSP_PATHS = ("/docs", "/redoc")
_EMBEDDABLE_PATHS = ("/widget.js",)  # fetched by other sites' pages: must stay loadable cross-origin


class SecurityHeadersMiddleware:
    """Adds security headers to every response; a header the route set itself (the demo page's CSP) wins."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = list(_COMMON_HEADERS)
        if not path.startswith(_NO_CSP_PATHS):
            extra.append((b"content-security-policy", _API_CSP))
        embeddable = path in _EMBEDDABLE_PATHS
        extra.append((b"cross-origin-resource-policy", b"cross-origin" if embeddable else b"same-site"))
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

        await self.app(scope, receive, _with_headers(send, extra))


class RateLimitHeadersMiddleware:
    """`X-RateLimit-Limit`, `-Remaining`, `-Reset` and `Retry-After` on the response of every request that
    spent a budget, 429s included, whatever the route returned: a model, a `Response`, a stream, an error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # where the route's Budget leaves its verdict

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and (verdict := spent_verdict(scope)) is not None:
                message["headers"] = [*message.get("headers", []), *verdict.headers(time.time())]
            await send(message)

        await self.app(scope, receive, sending)


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` with a 413 before the app reads them: a declared length is
    checked up front, an undeclared (chunked) body is read up to the limit first."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS", "DELETE"}:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(scope, send)
                return
            await self.app(scope, receive, send)
            return
        buffered = await buffer_body(receive, self.max_bytes)
        if buffered.size > self.max_bytes:
            await self._refuse(scope, send)
            return
        await self.app(scope, buffered.replay(receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"Request body too large: at most {self.max_bytes} bytes."
        body = json.dumps(error_payload(scope["path"], message, 413)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
