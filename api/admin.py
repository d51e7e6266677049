"""Knowledge administration: what is served, and an incremental reindex run in the background."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from api.deps import BudgetDep, ServicesDep
from api.rate_limits import Rule
from api.schemas import (
    ErrorBody,
    IngestSummary,
    KnowledgeFile,
    KnowledgeOut,
    PendingChanges,
    ReindexConflict,
    ReindexJobOut,
)
from api.security import ADMIN_ERRORS, require_admin
from api.services import Services
from rag.ingestion import compare, desired_manifest
from rag.manifest import Manifest
from rag.reindex import ReindexJob

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
    job, started = services.reindexer.start()
    if not started:
        conflict = ReindexConflict(error="A reindex is already running.", job=_job(job))
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
        files=_files(served),
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


def _job(job: ReindexJob) -> ReindexJobOut:
    report = job.report
    return ReindexJobOut(
        id=job.id,
        status=job.status,
        started_at=_time(job.started_at),
        finished_at=_time(job.finished_at) if job.finished_at else None,
        to_embed=job.to_embed,
        embedded=job.embedded,
        result=IngestSummary.model_validate(report, from_attributes=True) if report else None,
        error=job.error,
    )


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)
