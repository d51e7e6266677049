"""The endpoints. Limits are per app: routers are built with the app's own limiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slowapi import Limiter

from agent.agent import Answer, AnswerEvent, Sources, Text
from agent.conversations import Turn
from api import __version__, sse
from api.deps import ServicesDep, SessionId
from api.origins import check_origin
from api.schemas import (
    CacheCleared,
    CacheStats,
    ChatRequest,
    ChatResponse,
    ErrorBody,
    HealthResponse,
    HistoryCleared,
    HistoryMessage,
    HistoryResponse,
    LlmInfo,
    LlmStats,
    ModelInfo,
    ServiceInfo,
    Source,
    TierInfo,
    TierStatsOut,
    ValidationErrorBody,
    check_length,
    sources_of,
)
from api.security import ADMIN_ERRORS, require_admin
from api.services import CacheSlot, Services
from api.settings import ApiSettings
from api.sse import SSE_HEADERS

log = structlog.get_logger(__name__)

ENDPOINTS = {
    "POST /chat": "Ask a question; answers come with their sources.",
    "POST /chat/stream": "The same, streamed as Server-Sent Events (sources, token..., done).",
    "GET /history/{session_id}": "A conversation's turns, to restore a chat log.",
    "DELETE /history/{session_id}": "Forget a conversation.",
    "GET /health": "Liveness, active model, vector count (never rate limited).",
    "GET /stats/llm": "Per-tier attempts, failures, retries, latency, fallback rate, circuits.",
    "GET /cache/stats": "Answer-cache statistics (admin).",
    "DELETE /cache": "Empty the answer cache (admin).",
    "GET /metrics": "Prometheus metrics (admin).",
    "POST /admin/reindex": "Ingest changes of the knowledge folder in the background (admin).",
    "GET /admin/reindex": "State of the latest reindex (admin).",
    "GET /admin/knowledge": "Documents served: chunks, hashes, ingest times, pending changes (admin).",
    "POST /v1/chat/completions": "OpenAI-compatible chat (plain and streaming), grounded like /chat.",
    "GET /v1/models": "OpenAI-compatible model list.",
    "GET /docs": "Interactive API documentation.",
}
_RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "Rate limit exceeded"}
}
_VISITOR_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body could not be read (not UTF-8 JSON)"},
    403: {"model": ErrorBody, "description": "The page's origin is not in ALLOWED_ORIGINS"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ValidationErrorBody, "description": "Invalid request"},
}
ORIGIN_CHECK = Depends(check_origin)
# request.state attribute: the cache lookup the fast path (api.fastpath) made before handing a miss on.
CHAT_SLOT_STATE = "chat_cache_slot"


def build_router(limiter: Limiter, settings: ApiSettings) -> APIRouter:
    router = APIRouter()

    @router.get("/", response_model=ServiceInfo, responses=_RATE_LIMITED)
    @limiter.limit(settings.rate_limit_root)
    async def root(request: Request, response: Response) -> ServiceInfo:
        return ServiceInfo(
            name="Knowledge-base chatbot API",
            version=__version__,
            description="Answers website visitors from the company's own knowledge base.",
            docs="/docs",
            endpoints=ENDPOINTS,
        )

    @router.get("/health", response_model=HealthResponse)
    async def health(services: ServicesDep) -> HealthResponse:
        chain = services.agent.chain
        active = chain.active()
        vectors = services.store.count()
        return HealthResponse(
            status="ok" if vectors > 0 else "degraded",
            version=__version__,
            llm=LlmInfo(
                active=active.provider if active else None,
                chain=[
                    TierInfo(
                        provider=view.generator.provider,
                        model=view.generator.model,
                        state=view.status.state,
                        configured=view.status.state != "not configured",
                        detail=view.status.detail,
                        loaded=view.status.loaded,
                        circuit=view.circuit,
                        last_error=view.last_error,
                    )
                    for view in chain.describe()
                ],
            ),
            vectors=vectors,
            knowledge_version=services.agent.retriever.knowledge_version,
            embedder=services.embedder.state,
            cache_size=services.cache.size_hint(),
        )

    @router.post(
        "/chat",
        response_model=ChatResponse,
        responses={**_RATE_LIMITED, **_VISITOR_ERRORS},
        dependencies=[ORIGIN_CHECK],
    )
    @limiter.shared_limit(settings.rate_limit_chat, scope="chat")  # one budget for /chat and its stream
    async def chat(request: Request, body: ChatRequest, services: ServicesDep) -> Response:
        check_length(body.message, settings.max_message_chars, "message")
        started = time.perf_counter()
        history = await _history(services, body.session_id)
        slot: CacheSlot | None = getattr(request.state, CHAT_SLOT_STATE, None)
        if slot is None:
            slot = await services.cache_slot(body.message, history=history, lookup=body.use_cache)
        answer = slot.hit or await services.agent.answer(body.message, history)
        await slot.store(answer)
        await _remember(services, body.session_id, body.message, answer)
        reply = answered(
            services, body, answer, cached=slot.hit is not None, elapsed=time.perf_counter() - started
        )
        # Serialized here, once: the model is already valid, FastAPI would validate and encode it again.
        return Response(reply.model_dump_json(), media_type="application/json")

    @router.post(
        "/chat/stream",
        dependencies=[ORIGIN_CHECK],
        responses={
            **_RATE_LIMITED,
            **_VISITOR_ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "sources, token..., done | error"},
        },
    )
    @limiter.shared_limit(settings.rate_limit_chat, scope="chat")  # one budget for /chat and its stream
    async def chat_stream(
        request: Request, response: Response, body: ChatRequest, services: ServicesDep
    ) -> StreamingResponse:
        """The answer as Server-Sent Events: `sources`, then `token` pieces, then `done` (or `error`)."""
        check_length(body.message, settings.max_message_chars, "message")
        started = time.perf_counter()
        history = await _history(services, body.session_id)
        slot = await services.cache_slot(body.message, history=history, lookup=body.use_cache)
        if slot.hit is not None:
            await _remember(services, body.session_id, body.message, slot.hit)
            events = _replay(services, body, slot.hit, started)
        else:
            events = _stream_answer(
                services.agent.stream(body.message, history), services, body, slot, started
            )
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)

    @router.get(
        "/history/{session_id}",
        response_model=HistoryResponse,
        responses={**_RATE_LIMITED, **_VISITOR_ERRORS},
        dependencies=[ORIGIN_CHECK],
    )
    @limiter.limit(settings.rate_limit_history)
    async def get_history(
        request: Request, response: Response, session_id: SessionId, services: ServicesDep
    ) -> HistoryResponse:
        """The conversation so far (empty when unknown or expired), for a widget restoring its log."""
        messages: list[HistoryMessage] = []
        for turn in await services.conversations.turns(session_id):
            messages.append(HistoryMessage(role="user", content=turn.question))
            sources = [Source.model_validate(s) for s in turn.sources]
            messages.append(HistoryMessage(role="assistant", content=turn.answer, sources=sources))
        return HistoryResponse(session_id=session_id, messages=messages)

    @router.delete(
        "/history/{session_id}",
        response_model=HistoryCleared,
        responses={**_RATE_LIMITED, **_VISITOR_ERRORS},
        dependencies=[ORIGIN_CHECK],
    )
    @limiter.limit(settings.rate_limit_history)
    async def delete_history(
        request: Request, response: Response, session_id: SessionId, services: ServicesDep
    ) -> HistoryCleared:
        removed = await services.conversations.delete(session_id)
        return HistoryCleared(message=f"Conversation deleted. Removed {removed} turns", removed=removed)

    @router.get("/stats/llm", response_model=LlmStats, responses=_RATE_LIMITED)
    @limiter.limit(settings.rate_limit_stats)
    async def llm_stats(request: Request, response: Response, services: ServicesDep) -> LlmStats:
        chain = services.agent.chain
        snapshot = chain.stats.snapshot()
        views = {view.generator.provider: view for view in chain.describe()}
        tiers = {
            provider: TierStatsOut(
                **figures, state=views[provider].status.state, circuit=views[provider].circuit
            )
            for provider, figures in snapshot.pop("tiers").items()
        }
        return LlmStats(**snapshot, tiers=tiers)

    @router.get(
        "/cache/stats",
        response_model=CacheStats,
        responses={**_RATE_LIMITED, **ADMIN_ERRORS},
        dependencies=[Depends(require_admin)],
    )
    @limiter.limit(settings.rate_limit_cache_stats)
    async def cache_stats(request: Request, response: Response, services: ServicesDep) -> CacheStats:
        cache = services.cache
        counts = await cache.counts()
        lookups = counts.hits + counts.misses
        return CacheStats(
            total_entries=counts.total,
            valid_entries=counts.valid,
            expired_entries=counts.total - counts.valid,
            cache_ttl_seconds=cache.ttl,
            max_entries=cache.max_entries,
            hits=counts.hits,
            misses=counts.misses,
            hit_rate=round(counts.hits / lookups, 4) if lookups else 0.0,
        )

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            **ADMIN_ERRORS,
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        },
        dependencies=[Depends(require_admin)],
    )
    async def metrics(request: Request) -> PlainTextResponse:
        registry = request.app.state.metrics.registry
        body = await asyncio.to_thread(generate_latest, registry)  # collectors read the chain's figures
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    @router.delete(
        "/cache",
        response_model=CacheCleared,
        responses={**_RATE_LIMITED, **ADMIN_ERRORS},
        dependencies=[Depends(require_admin)],
    )
    @limiter.limit(settings.rate_limit_cache_clear)
    async def clear_cache(request: Request, response: Response, services: ServicesDep) -> CacheCleared:
        removed = await services.cache.clear()
        return CacheCleared(message=f"Cache cleared. Removed {removed} entries", removed=removed)

    return router


def chat_route(router: APIRouter) -> APIRoute:
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.path == "/chat")


async def _history(services: Services, session_id: str | None) -> tuple[Turn, ...]:
    return tuple(await services.conversations.turns(session_id)) if session_id else ()


async def _remember(services: Services, session_id: str | None, question: str, answer: Answer) -> None:
    """Successful answers join the conversation; apologies do not (they would only confuse follow-ups)."""
    if session_id and answer.status == "success":
        turn = Turn(question=question, answer=answer.text, sources=tuple(sources_of(answer.sources)))
        await services.conversations.append(session_id, turn)


def _done(services: Services, body: ChatRequest, answer: Answer, *, cached: bool, elapsed: float) -> str:
    response = answered(services, body, answer, cached=cached, elapsed=elapsed)
    return sse.event(
        "done", {"status": response.status, "cached": cached, "model_info": response.model_info.model_dump()}
    )


async def _replay(
    services: Services, body: ChatRequest, answer: Answer, started: float
) -> AsyncIterator[str]:
    """A cached answer, in the same events as a generated one: a few pieces at once."""
    yield sse.event("sources", sources_of(answer.sources))
    for line in answer.text.splitlines(keepends=True):
        yield sse.event("token", {"text": line})
    yield _done(services, body, answer, cached=True, elapsed=time.perf_counter() - started)


async def _stream_answer(
    events: AsyncIterator[AnswerEvent], services: Services, body: ChatRequest, slot: CacheSlot, started: float
) -> AsyncIterator[str]:
    async for item in events:
        if isinstance(item, Sources):
            yield sse.event("sources", sources_of(item.passages))
        elif isinstance(item, Text):
            yield sse.event("token", {"text": item.text})
        elif item.answer.status == "success":
            await slot.store(item.answer)
            await _remember(services, body.session_id, body.message, item.answer)
            yield _done(services, body, item.answer, cached=False, elapsed=time.perf_counter() - started)
        else:
            answered(
                services, body, item.answer, cached=False, elapsed=time.perf_counter() - started
            )  # logs it
            yield sse.event("error", {"message": item.answer.text})


def _logged(services: Services, body: ChatRequest) -> str | None:
    """The visitor's message, for the log, only where LOG_MESSAGES allows it (it may hold personal data;
    e-mail addresses and phone numbers are masked in every log line anyway)."""
    return body.message if services.settings.logging.log_messages else None


def answered(
    services: Services, body: ChatRequest, answer: Answer, *, cached: bool, elapsed: float
) -> ChatResponse:
    """The response body, with its log line and its count."""
    services.metrics.answers.labels(answer.provider, answer.status, str(cached).lower()).inc()
    logged = _logged(services, body)
    retrieval = None if cached else answer.retrieval_time
    log.info(
        "chat_answered",
        **({"message": logged} if logged is not None else {}),
        provider=answer.provider,
        status=answer.status,
        cached=cached,
        degraded=answer.degraded,
        sources=len(answer.sources),
        seconds=round(elapsed, 4),
        **({"retrieval_seconds": round(retrieval, 5)} if retrieval is not None else {}),
    )

    return ChatResponse(
        response=answer.text,
        status=answer.status,
        cached=cached,
        sources=[Source.model_validate(s) for s in sources_of(answer.sources)],
        model_info=ModelInfo(
            provider=answer.provider,
            model=answer.model,
            response_time=round(elapsed if cached else answer.response_time, 4),
        ),
    )
