"""An OpenAI-compatible surface, so that any OpenAI client or chat UI can talk to the bot.

`POST /v1/chat/completions` (plain and `stream: true`) and `GET /v1/models`. The last user message is the
question, earlier user/assistant pairs are the conversation; the answer is grounded exactly like `/chat`,
and its sources travel in an extra `sources` field that OpenAI clients ignore. System messages from the
caller are ignored: the bot's own instructions are not for callers to replace.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from slowapi import Limiter

from agent.agent import Answer, Sources, Text
from agent.conversations import Turn
from api.deps import ServicesDep
from api.origins import check_origin
from api.schemas import OpenAIErrorBody, check_length, clean_text, no_lone_surrogates, sources_of
from api.services import CacheSlot, Services
from api.settings import MESSAGE_CHARS_CEILING, ApiSettings
from api.sse import SSE_HEADERS
from rag.retriever import Passage

MODEL_ID = "kb-chatbot"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OpenAIErrorBody, "description": "The body could not be read (not UTF-8 JSON)"},
    403: {"model": OpenAIErrorBody, "description": "The page's origin is not in ALLOWED_ORIGINS"},
    413: {"model": OpenAIErrorBody, "description": "Request body too large"},
    422: {"model": OpenAIErrorBody, "description": "Invalid request"},
    429: {"model": OpenAIErrorBody, "description": "Rate limit exceeded"},
}


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: the bot's own settings apply

    model: str = MODEL_ID
    messages: list[Message] = Field(min_length=1)
    stream: bool = False

    _valid_unicode = model_validator(mode="before")(no_lone_surrogates)

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages: list[Message]) -> list[Message]:
        question = messages[-1]
        if question.role != "user" or not question.text.strip():
            raise ValueError("the last message must be a non-empty user message")
        if len(question.text) > MESSAGE_CHARS_CEILING:
            raise ValueError(f"the last message must have at most {MESSAGE_CHARS_CEILING} characters")
        return messages

    def question(self) -> str:
        return clean_text(self.messages[-1].text)

    def history(self, keep: int) -> tuple[Turn, ...]:
        """Earlier user messages, each paired with the assistant reply that followed it."""
        turns: list[Turn] = []
        pending: str | None = None
        for message in self.messages[:-1]:
            if message.role == "user":
                pending = message.text
            elif message.role == "assistant" and pending is not None:
                turns.append(Turn(question=pending, answer=message.text))
                pending = None
        return tuple(turns[-keep:]) if keep else ()


def build_openai_router(limiter: Limiter, settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    @router.get("/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "knowledge-base"}],
        }

    @router.post("/chat/completions", responses=_ERRORS, dependencies=[Depends(check_origin)])
    @limiter.shared_limit(settings.rate_limit_chat, scope="chat")  # the same budget as /chat
    async def chat_completions(
        request: Request, response: Response, body: CompletionRequest, services: ServicesDep
    ) -> Any:
        question = body.question()
        check_length(question, settings.max_message_chars, "messages")
        history = body.history(services.settings.agent.history_turns)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        slot = await services.cache_slot(question, history=history)
        if body.stream:
            events = _stream(services, question, history, completion_id, slot)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        answer = slot.hit or await services.agent.answer(question, history)
        await slot.store(answer)
        return _completion(answer, completion_id)

    return router


def _completion(answer: Answer, completion_id: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "sources": sources_of(answer.sources),
        "status": answer.status,
        "model_info": {"provider": answer.provider, "model": answer.model},
    }


def _chunk(completion_id: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _stream(
    services: Services,
    question: str,
    history: tuple[Turn, ...],
    completion_id: str,
    slot: CacheSlot,
) -> AsyncIterator[str]:
    yield _chunk(completion_id, {"role": "assistant", "content": ""})
    if slot.hit is not None:
        yield _chunk(completion_id, {"content": slot.hit.text})
        yield _chunk(completion_id, {}, "stop", sources=sources_of(slot.hit.sources))
    else:
        sources: tuple[Passage, ...] = ()
        async for event in services.agent.stream(question, history):
            if isinstance(event, Sources):
                sources = event.passages
            elif isinstance(event, Text):
                yield _chunk(completion_id, {"content": event.text})
            else:
                answer = event.answer
                if answer.status != "success":  # an apology, as the assistant's words
                    yield _chunk(completion_id, {"content": answer.text})
                else:
                    await slot.store(answer)
                yield _chunk(completion_id, {}, "stop", sources=sources_of(sources), status=answer.status)
    yield "data: [DONE]\n\n"
