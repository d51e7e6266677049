"""Knowledge administration: what is served, and a reindex or a website crawl run in the background."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from api.deps import BudgetDep, ServicesDep
from api.rate_limits import Rule
from api.schemas import (
    CrawlError,
    CrawlOut,
    CrawlResult,
    ErrorBody,
    IngestSummary,
    KnowledgeFile,
    KnowledgeOut,
    PendingChanges,
    ReindexConflict,
    ReindexJobOut,
    SiteOut,
)
from api.security import ADMIN_ERRORS, require_admin
from api.services import Services
from api.site_crawl import SiteCrawler
from rag.crawl.schedule import next_crawl_at
from rag.crawl.snapshot import Snapshot
from rag.ingestion import compare, desired_manifest
from rag.manifest import Manifest
from rag.reindex import CrawlState, JobKind, ReindexJob

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)


@router.post(
    "/reindex",
    status_code=202,
    response_model=ReindexJobOut,
    responses={
        409: {"model": ReindexConflict, "description": "A reindex is already running"},
        429: {"model": ErrorBody, "description": "Rate limit exceeded"},
    },
)
async def reindex(response: Response, services: ServicesDep, budget: BudgetDep) -> Any:
    await budget.spend(Rule.ADMIN_REINDEX)
    return _started(services, "ingest", response)


@router.post(
    "/crawl",
    status_code=202,
    response_model=ReindexJobOut,
    responses={
        409: {"model": ReindexConflict, "description": "A reindex or crawl is already running"},
        422: {"model": ErrorBody, "description": "Nothing to crawl: KNOWLEDGE_URLS is not set"},
        429: {"model": ErrorBody, "description": "Rate limit exceeded"},
    },
)
async def crawl(response: Response, services: ServicesDep, budget: BudgetDep) -> Any:
    """Crawl the website (KNOWLEDGE_URLS) now, then ingest what changed; follow it at GET /admin/reindex."""
    await budget.spend(Rule.ADMIN_REINDEX)
    if not services.reindexer.can_crawl:
        return JSONResponse(
            {"error": "Nothing to crawl: set KNOWLEDGE_URLS to the website's start pages or sitemaps."},
            status_code=422,
        )
    return _started(services, "crawl", response)


def _started(services: Services, kind: JobKind, response: Response) -> Any:
    """The job started (202, where to follow it), or the one running (409)."""
    job, started = services.reindexer.start(kind)
    if not started:
        conflict = ReindexConflict(error=_busy(job), job=_job(job))
        return JSONResponse(conflict.model_dump(mode="json"), status_code=409)
    response.headers["Location"] = "/admin/reindex"
    return _job(job)


@router.get(
    "/reindex",
    response_model=ReindexJobOut,
    responses={404: {"model": ErrorBody, "description": "No reindex since the service started"}},
)
async def reindex_state(services: ServicesDep, budget: BudgetDep) -> Any:
    await budget.spend(Rule.ADMIN_REINDEX)
    job = services.reindexer.latest
    if job is None:
        return JSONResponse({"error": "No reindex has run since the service started."}, status_code=404)
    return _job(job)


@router.get("/knowledge", response_model=KnowledgeOut)
async def knowledge(services: ServicesDep, budget: BudgetDep) -> KnowledgeOut:
    await budget.spend(Rule.ADMIN_KNOWLEDGE)
    return await asyncio.to_thread(_knowledge, services)  # hashes the folder


def _knowledge(services: Services) -> KnowledgeOut:
    build = services.store.active_build
    served = build.manifest if build else None
    pending, up_to_date, folder_error = None, None, None
    try:
        wanted = desired_manifest(services.settings.rag)
    except OSError as exc:
        folder_error = str(exc)
    else:
        changes = compare(served, wanted)
        up_to_date = served is not None and served.matches(wanted)
        pending = PendingChanges(
            added=changes.added,
            changed=changes.changed,
            removed=changes.removed,
            settings_changed=served is not None and changes.rebuild,
        )
    latest = services.reindexer.latest
    return KnowledgeOut(
        version=served.version if served else None,
        collection=build.name if build else None,
        embedding_model=served.embedding_model if served else None,
        chunks=services.store.count(),
        documents=len(served.files) if served else 0,
        up_to_date=up_to_date,
        pending=pending,
        folder_error=folder_error,
        reindex=_job(latest) if latest else None,
        site=_site(services.site) if services.site else None,
        files=_files(served),
    )


def _site(site: SiteCrawler) -> SiteOut:
    last = Snapshot(site.folder).last_crawl()
    return SiteOut(
        urls=site.urls,
        interval_seconds=site.interval,
        last_crawl_at=_time(last) if last else None,
        # A crawl overdue (a site never crawled) is due now: it starts within moments.
        next_crawl_at=_time(max(next_crawl_at(site.folder, site.interval), time.time()))
        if site.interval
        else None,
    )


def _files(manifest: Manifest | None) -> list[KnowledgeFile]:
    if manifest is None:
        return []
    return [
        KnowledgeFile(
            path=path,
            sha256=entry.sha256,
            chunks=entry.chunks,
            ingested_at=_time(entry.ingested_at) if entry.ingested_at else None,
            skipped=entry.skipped or None,
        )
        for path, entry in manifest.files.items()
    ]


def _busy(job: ReindexJob) -> str:
    return "A crawl is already running." if job.kind == "crawl" else "A reindex is already running."


def _job(job: ReindexJob) -> ReindexJobOut:
    report = job.report
    return ReindexJobOut(
        id=job.id,
        kind=job.kind,
        scheduled=job.scheduled,
        status=job.status,
        started_at=_time(job.started_at),
        finished_at=_time(job.finished_at) if job.finished_at else None,
        crawl=_crawl(job.crawl) if job.crawl else None,
        to_embed=job.to_embed,
        embedded=job.embedded,
        result=IngestSummary.model_validate(report, from_attributes=True) if report else None,
        error=job.error,
    )


def _crawl(state: CrawlState) -> CrawlOut:
    report = state.report
    result = None
    if report is not None:
        errors = [CrawlError(url=url, reason=reason) for url, reason in report.errors]
        fields = dataclasses.asdict(report) | {"errors": errors}
        result = CrawlResult.model_validate(fields)
    return CrawlOut(
        done=state.done,
        queued=state.queued,
        pages=state.pages,
        skipped=state.skipped,
        not_due=state.not_due,
        result=result,
    )


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)
