"""The baseline of the cached-answer benchmark: a bare FastAPI app whose `POST /chat` validates the same
request body and returns the same JSON, served by the same uvicorn settings as the service.

    BENCH_PAYLOAD=answer.json HOST=127.0.0.1 PORT=8001 python -m bench.baseline_app
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from api.__main__ import serve
from api.settings import Settings


class Question(BaseModel):
    message: str


def create_baseline(payload: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.post("/chat")
    async def chat(body: Question) -> dict[str, Any]:
        return payload

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    serve(create_baseline(json.loads(Path(os.environ["BENCH_PAYLOAD"]).read_text())), Settings())
