"""The owner's endpoints: `POST /feedback` (visitors), and the admin reports and curated answers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from agent.records.gaps import GapRow
from agent.records.repository import ConversationFilter, ConversationSummary, CuratedEntry, RecordedAnswer
from api.deps import BudgetDep
from api.origins import check_origin
from api.owner import OwnerService
from api.owner_schemas import (
    CONVERSATION_ID_PATTERN,
    ConversationOut,
    ConversationPageOut,
    ConversationSummaryOut,
    CuratedIn,
    CuratedList,
    CuratedOut,
    CurateLink,
    FeedbackInfo,
    FeedbackOut,
    FeedbackRequest,
    GapOut,
    GapsOut,
    NearestPassage,
    TurnOut,
)
from api.rate_limits import Rule
from api.responses import RATE_LIMITED, VISITOR_ERRORS, Responses
from api.schemas import ErrorBody, ValidationErrorBody
from api.security import ADMIN_ERRORS, require_admin

visitor_router = APIRouter()
router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)

_NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "Unknown id, or answers are not recorded"}}
_UNAVAILABLE: Responses = {503: {"model": ErrorBody, "description": "The records database cannot be reached"}}
_RECORDS = (
    _NOT_FOUND
    | _UNAVAILABLE
    | {
        422: {"model": ValidationErrorBody, "description": "Invalid request"},
        413: {"model": ErrorBody, "description": "Request body too large"},
        400: {"model": ErrorBody, "description": "The body could not be read (not UTF-8 JSON)"},
    }
)
_EXCERPT = 300


async def get_owner(request: Request) -> OwnerService:
    owner: OwnerService = request.app.state.owner
    return owner


OwnerDep = Annotated[OwnerService, Depends(get_owner)]
Days = Annotated[int, Query(ge=1, le=3650, description="How many days back.")]
EntryId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The curated answer's id.")]


@visitor_router.post(
    "/feedback",
    response_model=FeedbackOut,
    responses={**RATE_LIMITED, **VISITOR_ERRORS, **_NOT_FOUND, **_UNAVAILABLE},
    dependencies=[Depends(check_origin)],
)
async def feedback(body: FeedbackRequest, owner: OwnerDep, budget: BudgetDep) -> FeedbackOut:
    """A visitor's rating of one answer; a second rating of the same answer replaces the first."""
    await budget.spend(Rule.FEEDBACK)
    await owner.rate(body.answer_id, body.rating, body.comment)
    return FeedbackOut(answer_id=body.answer_id, rating=body.rating)


@router.get(
    "/gaps",
    response_model=GapsOut,
    responses=_RECORDS | {200: {"content": {"text/csv": {}}, "description": "The report (csv: ?format=csv)"}},
)
async def gaps(
    owner: OwnerDep,
    budget: BudgetDep,
    days: Days = 7,
    format: Annotated[Literal["json", "csv"], Query(description="csv: one row per gap.")] = "json",
) -> Response:
    """Questions the knowledge did not answer well (nothing found, only the extractive fallback, withheld,
    or rated down), grouped by meaning, newest first."""
    await budget.spend(Rule.ADMIN_RECORDS)
    report = await owner.gaps(days)
    body = GapsOut(
        days=days, since=report.since, questions=report.questions, gaps=[_gap(r) for r in report.rows]
    )
    if format == "csv":
        return Response(
            _csv(body),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="knowledge-gaps-{days}d.csv"'},
        )
    return Response(body.model_dump_json(), media_type="application/json")


@router.get("/answers", response_model=CuratedList, responses=_RECORDS)
async def list_curated(owner: OwnerDep, budget: BudgetDep) -> CuratedList:
    await budget.spend(Rule.ADMIN_RECORDS)
    return CuratedList(answers=[_curated(entry) for entry in await owner.curated()])


@router.post("/answers", status_code=201, response_model=CuratedOut, responses=_RECORDS)
async def add_curated(body: CuratedIn, owner: OwnerDep, budget: BudgetDep, response: Response) -> CuratedOut:
    """A curated answer: served at once, before any retrieval, to questions that mean the same as one of
    its example questions (CURATED_THRESHOLD)."""
    await budget.spend(Rule.ADMIN_RECORDS)
    entry = await owner.add_curated(body.questions, body.answer, body.sources)
    response.headers["Location"] = f"/admin/answers/{entry.id}"
    return _curated(entry)


@router.get("/answers/{entry_id}", response_model=CuratedOut, responses=_RECORDS)
async def get_curated(entry_id: EntryId, owner: OwnerDep, budget: BudgetDep) -> CuratedOut:
    await budget.spend(Rule.ADMIN_RECORDS)
    return _curated(await owner.curated_entry(entry_id))


@router.put("/answers/{entry_id}", response_model=CuratedOut, responses=_RECORDS)
async def change_curated(
    entry_id: EntryId, body: CuratedIn, owner: OwnerDep, budget: BudgetDep
) -> CuratedOut:
    await budget.spend(Rule.ADMIN_RECORDS)
    return _curated(await owner.change_curated(entry_id, body.questions, body.answer, body.sources))


@router.delete("/answers/{entry_id}", status_code=204, responses=_RECORDS)
async def remove_curated(entry_id: EntryId, owner: OwnerDep, budget: BudgetDep) -> Response:
    await budget.spend(Rule.ADMIN_RECORDS)
    await owner.remove_curated(entry_id)
    return Response(status_code=204)


@router.get("/conversations", response_model=ConversationPageOut, responses=_RECORDS)
async def conversations(
    owner: OwnerDep,
    budget: BudgetDep,
    days: Days = 7,
    rating: Annotated[Literal["up", "down"] | None, Query(description="With an answer rated so.")] = None,
    tier: Annotated[
        str | None, Query(max_length=32, description="With an answer from this provider.")
    ] = None,
    no_answer: Annotated[bool, Query(description="With a question nothing was found for.")] = False,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationPageOut:
    """Conversations with an answer in the period, newest first."""
    await budget.spend(Rule.ADMIN_RECORDS)
    where = ConversationFilter(since=_since(days), rating=rating, provider=tier, no_answer=no_answer)
    found = await owner.conversations(where, per_page, (page - 1) * per_page)
    return ConversationPageOut(
        total=found.total,
        page=page,
        per_page=per_page,
        conversations=[_summary(c) for c in found.conversations],
    )


@router.get("/conversations/{conversation_id}", response_model=ConversationOut, responses=_RECORDS)
async def conversation(
    conversation_id: Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN)], owner: OwnerDep, budget: BudgetDep
) -> ConversationOut:
    await budget.spend(Rule.ADMIN_RECORDS)
    return ConversationOut(
        id=conversation_id, turns=[turn_out(t) for t in await owner.conversation(conversation_id)]
    )


def turn_out(recorded: RecordedAnswer) -> TurnOut:
    record, rated = recorded.record, recorded.feedback
    return TurnOut(
        answer_id=record.id,
        at=record.created_at,
        surface=record.surface,
        question=record.question,
        answer=record.answer,
        provider=record.provider,
        model=record.model,
        outcome=record.outcome,
        cached=record.cached,
        degraded=record.degraded,
        sources=record.sources,
        retrieval_ms=record.retrieval_ms,
        total_ms=record.total_ms,
        feedback=FeedbackInfo(rating=rated.rating, comment=rated.comment, rated_at=rated.rated_at)
        if rated
        else None,
    )


def _since(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def _gap(row: GapRow) -> GapOut:
    nearest = row.nearest
    return GapOut(
        count=row.count,
        last_asked=row.last_asked,
        examples=row.examples,
        answer_ids=row.answer_ids,
        reasons=row.reasons,
        nearest=NearestPassage(
            source=nearest.source, title=nearest.title, score=nearest.score, text=nearest.text[:_EXCERPT]
        )
        if nearest
        else None,
        curate=CurateLink(body={"questions": row.examples, "answer": ""}),
    )


def _csv(report: GapsOut) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["count", "last_asked", "question", "other_wordings", "reasons", "nearest_source", "nearest_score"]
    )
    for gap in report.gaps:
        writer.writerow(
            [
                gap.count,
                gap.last_asked.isoformat(),
                _cell(gap.examples[0]),
                _cell(" | ".join(gap.examples[1:])),
                " ".join(f"{reason}={n}" for reason, n in sorted(gap.reasons.items())),
                _cell(gap.nearest.source) if gap.nearest else "",
                gap.nearest.score if gap.nearest else "",
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet reads a cell starting with = + - @ as a formula: a visitor's question must stay text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _curated(entry: CuratedEntry) -> CuratedOut:
    return CuratedOut.model_validate(entry, from_attributes=True)


def _summary(summary: ConversationSummary) -> ConversationSummaryOut:
    return ConversationSummaryOut.model_validate(summary, from_attributes=True)
