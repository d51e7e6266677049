"""The embeddable chat widget (`/widget.js`), its settings from the server (`/widget/config`) and a demo page
that embeds it (`/demo`), served by the API itself so that a website needs one script tag and nothing else."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from api.deps import BudgetDep, ServicesDep, SettingsDep
from api.origins import check_origin
from api.rate_limits import Rule
from api.responses import RATE_LIMITED, VISITOR_ERRORS

STATIC = Path(__file__).resolve().parent / "static"

# Short: a fixed widget reaches visitors within minutes, yet pages do not refetch it on every view.
WIDGET_HEADERS = {"Cache-Control": "public, max-age=300"}
# Shorter still: read on every page that opens the chat, and a changed setting should show within a minute.
CONFIG_HEADERS = {"Cache-Control": "public, max-age=60"}


class WidgetConfig(BaseModel):
    starters: list[str] = Field(description="Questions offered in an empty conversation (STARTER_QUESTIONS).")
    leads: bool = Field(
        description="Whether visitors can leave their contact details (POST /leads): answers are recorded."
    )


def _demo_policy(page: bytes) -> str:
    """Strict: scripts from this origin, the inline style by its hash, calls to this origin only."""
    styles = re.findall(rb"<style>(.*?)</style>", page, flags=re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in styles)
    return (
        "default-src 'none'; script-src 'self'; "
        f"style-src 'self' {hashes}; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


router = APIRouter()


@functools.cache
def _static(name: str) -> bytes:
    """Read on first use, then kept: both files are small and only change with a new release."""
    return (STATIC / name).read_bytes()


@functools.cache
def _demo_headers() -> dict[str, str]:
    return {"Content-Security-Policy": _demo_policy(_static("demo.html"))}


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> Response:
    script = _static("widget.js")
    return Response(script, media_type="application/javascript; charset=utf-8", headers=WIDGET_HEADERS)


@router.get("/demo", include_in_schema=False)
async def demo_page() -> HTMLResponse:
    return HTMLResponse(_static("demo.html"), headers=_demo_headers())


@router.get(
    "/widget/config",
    response_model=WidgetConfig,
    responses={**RATE_LIMITED, 403: VISITOR_ERRORS[403]},
    dependencies=[Depends(check_origin)],
)
async def widget_config(services: ServicesDep, settings: SettingsDep, budget: BudgetDep) -> Response:
    """What the widget offers beyond chatting: starter questions, and the contact form."""
    # The root's budget: a read as cheap as `GET /`, once per chat opened, that must not spend questions.
    await budget.spend(Rule.ROOT)
    body = WidgetConfig(
        starters=[q.strip() for q in settings.api.starter_questions if q.strip()],
        leads=services.leads is not None,  # kept in the answers' records database: none when that is off
    )
    return Response(body.model_dump_json(), media_type="application/json", headers=CONFIG_HEADERS)
