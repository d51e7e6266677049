"""The site owner's dashboard: the page (`GET /admin`), its static files, and the numbers it charts
(`GET /admin/overview`).

The page and its files hold no data, so anyone may load them; everything shown comes from the admin endpoints,
which the page calls with the owner's token (or, without ADMIN_TOKEN, from this machine only).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from agent.records.overview import PERIOD_MAX_DAYS, Numbers, Overview, overview
from api.dashboard_schemas import DayOut, NumbersOut, OverviewOut, SourceOut
from api.deps import BudgetDep
from api.owner import OwnerService, records_call
from api.rate_limits import Rule
from api.responses import Responses
from api.schemas import ErrorBody, ValidationErrorBody
from api.security import ADMIN_ERRORS, require_admin

STATIC = Path(__file__).resolve().parent / "static"
# The only files served under /admin/assets/: a name not listed here is a 404, whatever it spells.
ASSETS: dict[str, tuple[Path, str]] = {
    "admin.js": (STATIC / "admin" / "admin.js", "text/javascript; charset=utf-8"),
    "admin.css": (STATIC / "admin" / "admin.css", "text/css; charset=utf-8"),
    "uPlot.iife.min.js": (
        STATIC / "vendor" / "uplot" / "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
    ),
    "uPlot.min.css": (STATIC / "vendor" / "uplot" / "uPlot.min.css", "text/css; charset=utf-8"),
}
PAGE = STATIC / "admin" / "admin.html"
# No inline script or style at all: the page's scripts and styles are its files; uPlot sizes its elements
# through the CSSOM, which a policy does not govern.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page itself is the same for everyone, but a shared cache has no business keeping an admin page.
    "Cache-Control": "no-store",
}
# Assets are checked again on each load (cheap: 304 by ETag), so a new release's page never meets old code.
ASSET_CACHE = "no-cache"

_OVERVIEW_ERRORS: Responses = ADMIN_ERRORS | {
    404: {"model": ErrorBody, "description": "Answers are not recorded (RECORD_ANSWERS=false)"},
    422: {"model": ValidationErrorBody, "description": "Invalid request (days outside 1..365)"},
    503: {"model": ErrorBody, "description": "The records database cannot be reached"},
}

# One router: the page and its files are open to all, the numbers are admin only (a route dependency).
router = APIRouter()


@functools.cache
def _file(path: Path) -> tuple[bytes, str]:
    """Read on first use, then kept: the files are small and only change with a new release."""
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@router.get("/admin", include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    body, _ = _file(PAGE)
    return HTMLResponse(body, headers=PAGE_HEADERS)


@router.get("/admin/assets/{name}", include_in_schema=False)
async def dashboard_asset(name: str, request: Request) -> Response:
    known = ASSETS.get(name)
    if known is None:
        raise HTTPException(status_code=404, detail="No such file.")
    path, media_type = known
    body, etag = _file(path)
    headers = {"ETag": etag, "Cache-Control": ASSET_CACHE}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def _owner(request: Request) -> OwnerService:
    owner: OwnerService = request.app.state.owner
    return owner


@router.get(
    "/admin/overview",
    tags=["admin"],
    response_model=OverviewOut,
    responses=_OVERVIEW_ERRORS,
    dependencies=[Depends(require_admin)],
)
async def overview_numbers(
    budget: BudgetDep,
    owner: Annotated[OwnerService, Depends(_owner)],
    days: Annotated[
        int, Query(ge=1, le=PERIOD_MAX_DAYS, description="UTC days, today the last of them.")
    ] = 7,
) -> OverviewOut:
    """What the dashboard charts: per UTC day and for the whole period, answers by tier, answers that found
    nothing or were withheld, errors, ratings, cache hits and latency percentiles; and the sources cited
    most."""
    await budget.spend(Rule.ADMIN_RECORDS)
    engine = owner.owner.records.engine  # RecordsOff (404) when answers are not recorded
    numbers = await records_call(overview, engine, days, datetime.now(UTC))
    return _overview_out(days, numbers)


def _overview_out(days: int, numbers: Overview) -> OverviewOut:
    return OverviewOut(
        days=days,
        since=numbers.since,
        until=numbers.until,
        tiers=list(numbers.tiers),
        per_day=[DayOut(day=day.day, **_numbers(day.numbers)) for day in numbers.days],
        totals=NumbersOut(**_numbers(numbers.totals)),
        top_sources=[SourceOut(source=source, answers=count) for source, count in numbers.top_sources],
    )


def _numbers(numbers: Numbers) -> dict[str, Any]:
    return {
        "answers": numbers.answers,
        "tiers": numbers.tiers,
        "no_answer": numbers.no_answer,
        "withheld": numbers.withheld,
        "errors": numbers.errors,
        "thumbs_up": numbers.thumbs_up,
        "thumbs_down": numbers.thumbs_down,
        "cached": numbers.cached,
        "no_answer_rate": numbers.no_answer_rate,
        "withheld_rate": numbers.withheld_rate,
        "cache_hit_rate": numbers.cache_hit_rate,
        "p50_ms": numbers.p50_ms,
        "p95_ms": numbers.p95_ms,
    }
