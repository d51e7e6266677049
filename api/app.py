"""`create_app(settings)`: the FastAPI application, its lifespan-built services and its rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from agent.conversations import ConversationStore, MemoryConversations, RedisConversations
from api import (
    __version__,
    admin,
    chat_routes,
    dashboard,
    lead_routes,
    openai_api,
    owner_routes,
    status_routes,
    widget,
)
from api.cache import AnswerCache, MemoryAnswerCache, RedisAnswerCache
from api.chat import ChatService
from api.errors import install_error_handlers
from api.fastpath import ChatFastPath
from api.leads import LeadService
from api.metrics import Metrics, MetricsMiddleware
from api.middleware import (
    BodyLimitMiddleware,
    RateLimitHeadersMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from api.origins import install_cors, parse_origins
from api.owner import OwnerService
from api.rate_limits import build_rate_limits
from api.services import build_services
from api.settings import Settings
from rag.crawl.schedule import keep_site_in_sync
from rag.logs import configure_logging

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings | None = None, *, cache_timer: Callable[[], float] = time.monotonic
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.logging, secrets=settings.secrets())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.perf_counter()
        shared = _redis(settings.api.redis_url)  # built here: its connections belong to this event loop
        cache, conversations = _shared_state(settings, shared, cache_timer)
        try:
            services = await asyncio.to_thread(build_services, settings, cache, conversations, metrics)
        except BaseException:
            if shared is not None:
                await shared.aclose()
            raise
        app.state.services = services
        app.state.chat = ChatService(services)
        app.state.owner = OwnerService(services)
        app.state.leads = LeadService(services)
        app.state.rate_limits = build_rate_limits(settings.api, shared)
        watcher = (
            asyncio.create_task(app.state.owner.watch_curated(settings.records.curated_refresh_seconds))
            if services.owner is not None
            else None
        )
        # Delivers what is in the leads' outbox: left by a previous run, or taken from now on.
        courier = asyncio.create_task(services.leads.courier.run()) if services.leads is not None else None
        site = services.site
        sync = (
            asyncio.create_task(keep_site_in_sync(services.reindexer, site.folder, site.interval))
            if site is not None and site.interval > 0
            else None
        )
        active = services.agent.chain.active()
        log.info(
            "service_ready",
            seconds=round(time.perf_counter() - started, 3),
            vectors=services.store.count(),
            llm=active.provider if active else None,
        )
        try:
            yield
        finally:
            for task in (watcher, courier, sync):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await services.aclose()
            if shared is not None:
                await shared.aclose()
            log.info("service_stopped")

    app = FastAPI(
        title="Knowledge-base chatbot API",
        version=__version__,
        description="Answers website visitors from the company's own knowledge base, with sources.",
        lifespan=lifespan,
    )
    metrics = Metrics()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.allowed_origins = parse_origins(settings.api.allowed_origins)
    # Added innermost first: CORS wraps the 413, so a page can read it; every response gets the headers.
    app.add_middleware(ChatFastPath, route=_route(chat_routes.router, "/chat"))
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api.max_body_bytes)
    install_cors(app, app.state.allowed_origins)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    if settings.api.trusted_proxies:
        # Outermost: limits, logs and the admin check all see the visitor, not the proxy.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.api.trusted_proxies)
    install_error_handlers(app)
    routers = (
        status_routes.router,
        chat_routes.router,
        owner_routes.visitor_router,
        lead_routes.visitor_router,
        admin.router,
        owner_routes.router,
        lead_routes.router,
        dashboard.router,
        openai_api.router,
        widget.router,
    )
    for router in routers:
        app.include_router(router)
    return app


def _route(router: APIRouter, path: str) -> APIRoute:
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.path == path)


def _redis(url: str | None) -> Any:
    if not url:
        return None
    import redis.asyncio

    return redis.asyncio.from_url(url)


def _shared_state(
    settings: Settings, redis: Any, timer: Callable[[], float]
) -> tuple[AnswerCache, ConversationStore]:
    """In Redis when REDIS_URL is set (every replica sees the same), in this process otherwise."""
    api, agent = settings.api, settings.agent
    if redis is None:
        return (
            MemoryAnswerCache(api.cache_ttl, api.cache_max_entries, timer),
            MemoryConversations(agent.history_turns, agent.history_ttl),
        )
    return (
        RedisAnswerCache(redis, api.redis_prefix, api.cache_ttl),
        RedisConversations(redis, api.redis_prefix, agent.history_turns, agent.history_ttl),
    )
