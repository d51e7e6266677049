"""A fake OpenAI-compatible chat-completions API on 127.0.0.1 that the real `openai` SDK talks to; clients
take `base_url` (`url + "/v1"`)."""

from __future__ import annotations

import json
from typing import Any

from fakes.llm_server import FakeLLMServer, Recorded, Reply


class FakeOpenAI(FakeLLMServer):
    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def streams(self, request: Recorded) -> bool:
        return request.body.get("stream") is True

    def answer(self, reply: Reply) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": reply.text},
            "finish_reason": "stop",
        }
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "fake",
            "choices": [choice],
        }

    def stream_events(self, reply: Reply) -> list[bytes]:
        events = []
        for piece in reply.pieces():
            delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [delta],
            }
            events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events
