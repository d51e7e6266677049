"""Server-Sent Events framing for streamed answers."""

from __future__ import annotations

import json
from typing import Any

# Proxies (nginx) must pass events through as they come, and nothing may cache a live answer.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(name: str, data: Any) -> str:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n"
