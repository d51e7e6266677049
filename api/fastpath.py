"""Cache hits of `POST /chat`, answered in the ASGI layer.

Most of a cache hit's cost is the framework's: routing, dependency resolution, the rate-limit decorator's
bookkeeping, response validation. This middleware sits right around the router and answers a plain question
whose answer is cached, with the same validation, origin check, rate-limit budget (slowapi's own check and
headers), body, log line and metrics as the route. Everything else goes on to the route unchanged: an invalid
body, a conversation, `use_cache: false`, a refused origin, a cache miss (which takes the lookup and the limit
check already made with it, so neither is done twice).
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from fastapi.routing import APIRoute
from limits.storage import MemoryStorage
from pydantic import ValidationError
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.origins import refused_origin
from api.routes import CHAT_SLOT_STATE, answered
from api.schemas import ChatRequest
from api.services import Services


class CachedAnswers:
    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        self.route = route  # the route it stands in for: `POST /chat`

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.route.path:
            await self.app(scope, receive, send)
            return
        messages, raw = await _read_body(receive)
        if not await self._answered_from_cache(scope, receive, send, raw):
            await self.app(scope, _replaying(messages, receive), send)

    async def _answered_from_cache(
        self, scope: Scope, receive: Receive, send: Send, raw: bytes | None
    ) -> bool:
        app: Any = scope["app"]
        services: Services | None = getattr(app.state, "services", None)
        if raw is None or services is None or not _json(scope):
            return False
        try:
            body = ChatRequest.model_validate_json(raw)
        except ValidationError:
            return False  # the route answers with its 422
        limit = services.settings.api.max_message_chars
        if body.session_id is not None or not body.use_cache or len(body.message) > limit:
            return False
        request = Request(scope, receive)
        if refused_origin(request) is not None:
            return False  # the route answers with its 403
        route = self.route
        scope["route"] = route  # what the metrics label and the 429 handler read
        limiter = app.state.limiter
        # Counters in Redis cost a round trip (slowapi's calls are synchronous): made in a worker thread,
        # never on the event loop. In-process counters are cheaper than the thread hop.
        remote = not isinstance(limiter.limiter.storage, MemoryStorage)
        started = time.perf_counter()
        check = partial(limiter._check_request_limit, request, route.endpoint, False)
        try:
            await asyncio.to_thread(check) if remote else check()
        except RateLimitExceeded as exc:
            response = await app.exception_handlers[RateLimitExceeded](request, exc)
            await response(scope, receive, send)
            return True
        request.state._rate_limiting_complete = True  # slowapi's flag: the route must not count it again
        slot = await services.cache_slot(body.message, history=())
        if slot.hit is None:
            setattr(request.state, CHAT_SLOT_STATE, slot)
            return False
        reply = answered(services, body, slot.hit, cached=True, elapsed=time.perf_counter() - started)
        response = Response(reply.model_dump_json(), media_type="application/json")
        # None when limits are switched off: slowapi then adds no headers, on either path.
        inject = partial(limiter._inject_headers, response, getattr(request.state, "view_rate_limit", None))
        await asyncio.to_thread(inject) if remote else inject()
        await response(scope, receive, send)
        return True


def _json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages (to hand on unchanged) and its body; None when the client left first."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = iter(messages)

    async def replay() -> Message:
        return next(pending, None) or await receive()

    return replay
