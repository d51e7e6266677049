"""The embeddable chat widget (`/widget.js`) and a demo page that embeds it (`/demo`), served by the API
itself so that a website needs one script tag and nothing else."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

STATIC = Path(__file__).resolve().parent / "static"

# Short: a fixed widget reaches visitors within minutes, yet pages do not refetch it on every view.
WIDGET_HEADERS = {"Cache-Control": "public, max-age=300"}


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
