"""The service's own endpoints: what it is, whether it is well, its figures and its answer cache."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import __version__
from api.deps import BudgetDep, ServicesDep
from api.rate_limits import Rule
from api.responses import RATE_LIMITED
from api.schemas import (
    CacheCleared,
    CacheStats,
    HealthResponse,
    LlmInfo,
    LlmStats,
    RecordsHealth,
    ServiceInfo,
    TierInfo,
    TierStatsOut,
)
from api.security import ADMIN_ERRORS, require_admin
from api.services import Services

router = APIRouter()
ADMIN_ONLY = Depends(require_admin)

ENDPOINTS = {
    "POST /chat": "Ask a question; answers come with their sources.",
    "POST /chat/stream": "The same, streamed as Server-Sent Events (sources, token..., done).",
    "GET /history/{session_id}": "A conversation's turns, to restore a chat log.",
    "DELETE /history/{session_id}": "Forget a conversation.",
    "GET /health": "Liveness, active model, vector count, answer records (never rate limited).",
    "GET /stats/llm": "Per-tier attempts, failures, retries, latency, fallback rate, circuits.",
    "GET /cache/stats": "Answer-cache statistics (admin).",
    "DELETE /cache": "Empty the answer cache (admin).",
    "GET /metrics": "Prometheus metrics (admin).",
    "POST /admin/reindex": "Ingest changes of the knowledge folder in the background (admin).",
    "GET /admin/reindex": "State of the latest reindex or crawl (admin).",
    "POST /admin/crawl": "Crawl the website (KNOWLEDGE_URLS), then ingest what changed (admin).",
    "GET /admin/knowledge": "Documents served: chunks, hashes, ingest times, pending changes (admin).",
    "POST /feedback": "Rate an answer (up or down, with an optional comment).",
    "POST /leads": "A visitor's contact request, delivered to the owner (webhook, e-mail).",
    "GET /widget/config": "The widget's starter questions and whether it offers the contact form.",
    "GET /admin": "The owner's dashboard (sign in with ADMIN_TOKEN).",
    "GET /admin/leads": "Contact requests and how their deliveries went (admin).",
    "POST /v1/chat/completions": "OpenAI-compatible chat (plain and streaming), grounded like /chat.",
    "GET /v1/models": "OpenAI-compatible model list.",
    "GET /docs": "Interactive API documentation.",
}


@router.get("/", response_model=ServiceInfo, responses=RATE_LIMITED)
async def root(budget: BudgetDep) -> ServiceInfo:
    await budget.spend(Rule.ROOT)
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
        records=_records_health(services),
    )


_DATABASES: dict[str, Literal["sqlite", "postgresql"]] = {"sqlite": "sqlite", "postgresql": "postgresql"}


def _records_health(services: Services) -> RecordsHealth:
    """The answer records' writer, from its own figures (no query: health stays cheap and never waits on the
    records database)."""
    owner = services.owner
    if owner is None:
        return RecordsHealth(state="off", database=None, queued=0, dropped=0)
    stats = owner.writer.stats()
    return RecordsHealth(
        state="ok" if stats.healthy else "unavailable",
        database=_DATABASES.get(owner.records.engine.url.get_backend_name()),
        queued=stats.queued,
        dropped=stats.dropped,
    )


@router.get("/stats/llm", response_model=LlmStats, responses=RATE_LIMITED)
async def llm_stats(services: ServicesDep, budget: BudgetDep) -> LlmStats:
    await budget.spend(Rule.LLM_STATS)
    chain = services.agent.chain
    snapshot = chain.stats.snapshot()
    views = {view.generator.provider: view for view in chain.describe()}
    tiers = {
        provider: TierStatsOut(**figures, state=views[provider].status.state, circuit=views[provider].circuit)
        for provider, figures in snapshot.pop("tiers").items()
    }
    return LlmStats(**snapshot, tiers=tiers)


@router.get(
    "/cache/stats",
    response_model=CacheStats,
    responses={**RATE_LIMITED, **ADMIN_ERRORS},
    dependencies=[ADMIN_ONLY],
)
async def cache_stats(services: ServicesDep, budget: BudgetDep) -> CacheStats:
    await budget.spend(Rule.CACHE_STATS)
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
    responses={**ADMIN_ERRORS, 200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    dependencies=[ADMIN_ONLY],
)
async def metrics(request: Request) -> PlainTextResponse:
    registry = request.app.state.metrics.registry
    body = await asyncio.to_thread(generate_latest, registry)  # collectors read the chain's figures
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)


@router.delete(
    "/cache",
    response_model=CacheCleared,
    responses={**RATE_LIMITED, **ADMIN_ERRORS},
    dependencies=[ADMIN_ONLY],
)
async def clear_cache(services: ServicesDep, budget: BudgetDep) -> CacheCleared:
    await budget.spend(Rule.CACHE_CLEAR)
    removed = await services.cache.clear()
    return CacheCleared(message=f"Cache cleared. Removed {removed} entries", removed=removed)
