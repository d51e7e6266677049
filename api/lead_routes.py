"""`POST /leads` (a visitor asks to be contacted) and the owner's `/admin/leads`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from agent.leads.outbox import Lead
from api.deps import BudgetDep
from api.lead_schemas import (
    LEAD_ID_PATTERN,
    DeliveryOut,
    LeadOut,
    LeadReceived,
    LeadRequest,
    LeadRetried,
    LeadsOut,
)
from api.leads import LeadService
from api.origins import check_origin
from api.rate_limits import Rule
from api.responses import RATE_LIMITED, VISITOR_ERRORS, Responses
from api.schemas import ErrorBody, ValidationErrorBody
from api.security import ADMIN_ERRORS, require_admin

visitor_router = APIRouter()
router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)

_OFF: Responses = {404: {"model": ErrorBody, "description": "Unknown id, or the records database is off"}}
_UNAVAILABLE: Responses = {503: {"model": ErrorBody, "description": "The records database cannot be reached"}}
_INVALID: Responses = {422: {"model": ValidationErrorBody, "description": "Invalid request"}}


async def get_leads(request: Request) -> LeadService:
    leads: LeadService = request.app.state.leads
    return leads


LeadsDep = Annotated[LeadService, Depends(get_leads)]


@visitor_router.post(
    "/leads",
    status_code=201,
    response_model=LeadReceived,
    responses={**RATE_LIMITED, **VISITOR_ERRORS, **_OFF, **_UNAVAILABLE},
    dependencies=[Depends(check_origin)],
)
async def take_lead(body: LeadRequest, leads: LeadsDep, budget: BudgetDep) -> LeadReceived:
    """A visitor asks to be contacted: stored at once with the conversation so far, then delivered to the
    owner (webhook and/or e-mail) until it arrives; every request and delivery shows in /admin/leads."""
    await budget.spend(Rule.LEADS)
    lead_id, channels = await leads.take(body)
    return LeadReceived(lead_id=lead_id, delivery=channels)


@router.get("/leads", response_model=LeadsOut, responses={**_OFF, **_UNAVAILABLE, **_INVALID})
async def list_leads(
    leads: LeadsDep,
    budget: BudgetDep,
    days: Annotated[int, Query(ge=1, le=3650, description="How many days back.")] = 30,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> LeadsOut:
    """Contact requests, newest first, each with how its deliveries went."""
    await budget.spend(Rule.ADMIN_RECORDS)
    found = await leads.leads(days, per_page, (page - 1) * per_page)
    return LeadsOut(
        total=found.total, page=page, per_page=per_page, leads=[_lead_out(lead) for lead in found.leads]
    )


@router.post(
    "/leads/{lead_id}/retry", response_model=LeadRetried, responses={**_OFF, **_UNAVAILABLE, **_INVALID}
)
async def retry_lead(
    leads: LeadsDep,
    budget: BudgetDep,
    lead_id: Annotated[str, Path(pattern=LEAD_ID_PATTERN, description="The contact request's id.")],
) -> LeadRetried:
    """Deliveries given up on are tried again now (after the receiver was fixed)."""
    await budget.spend(Rule.ADMIN_RECORDS)
    await leads.retry(lead_id)
    return LeadRetried(lead_id=lead_id)


def _lead_out(lead: Lead) -> LeadOut:
    return LeadOut(
        id=lead.id,
        created_at=lead.created_at,
        name=lead.name,
        email=lead.email,
        message=lead.message,
        conversation=lead.conversation,
        deliveries=[
            DeliveryOut(
                channel=d.channel,
                target=d.target,
                status=d.status,
                attempts=d.attempts,
                last_error=d.last_error,
                next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
                delivered_at=d.delivered_at,
            )
            for d in lead.deliveries
        ],
    )
