"""A fake Gemini REST API on 127.0.0.1 that the real `google-genai` SDK talks to: `:generateContent` and,
streaming, `:streamGenerateContent?alt=sse`."""

from __future__ import annotations

import json
from typing import Any

from fakes.llm_server import FakeLLMServer, Recorded, Reply


class FakeGemini(FakeLLMServer):
    def streams(self, request: Recorded) -> bool:
        return "streamGenerateContent" in request.path

    def answer(self, reply: Reply) -> dict[str, Any]:
        candidate = {"content": {"role": "model", "parts": [{"text": reply.text}]}, "finishReason": "STOP"}
        return {"candidates": [candidate], "modelVersion": "fake-gemini"}

    def stream_events(self, reply: Reply) -> list[bytes]:
        return [
            b"data: "
            + json.dumps(
                {"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}}]}
            ).encode()
            + b"\n\n"
            for piece in reply.pieces()
        ]
