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

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.agent import Sources, Text
from agent.conversations import Turn
from api.chat import Question, Reply, ReplyEvent
from api.deps import BudgetDep, ChatDep, SettingsDep
from api.origins import check_origin
from api.rate_limits import Rule
from api.schemas import OpenAIErrorBody, check_length, clean_text, no_lone_surrogates, sources_of
from api.settings import MESSAGE_CHARS_CEILING
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


router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


@router.get("/models")
async def models() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "knowledge-base"}],
    }


@router.post("/chat/completions", responses=_ERRORS, dependencies=[Depends(check_origin)])
async def chat_completions(
    body: CompletionRequest, chat: ChatDep, budget: BudgetDep, settings: SettingsDep
) -> Any:
    await budget.spend(Rule.CHAT)  # the same budget as /chat
    text = body.question()
    check_length(text, settings.api.max_message_chars, "messages")
    history = body.history(settings.agent.history_turns)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        events = await chat.stream(Question(text, "openai_stream", history=history))
        return StreamingResponse(
            _chunks(events, completion_id), media_type="text/event-stream", headers=SSE_HEADERS
        )
    reply = await chat.answer(Question(text, "openai", history=history))
    return _completion(reply, completion_id)


def _completion(reply: Reply, completion_id: str) -> dict[str, Any]:
    answer = reply.answer
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
        "answer_id": reply.answer_id,  # an extra field, for POST /feedback
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


async def _chunks(events: AsyncIterator[ReplyEvent], completion_id: str) -> AsyncIterator[str]:
    yield _chunk(completion_id, {"role": "assistant", "content": ""})
    sources: tuple[Passage, ...] = ()
    async for event in events:
        if isinstance(event, Sources):
            sources = event.passages
        elif isinstance(event, Text):
            yield _chunk(completion_id, {"content": event.text})
        else:
            answer = event.reply.answer
            if answer.status != "success":  # an apology, as the assistant's words
                yield _chunk(completion_id, {"content": answer.text})
            extra = {
                "sources": sources_of(sources),
                "status": answer.status,
                "answer_id": event.reply.answer_id,
            }
            yield _chunk(completion_id, {}, "stop", **extra)
    yield "data: [DONE]\n\n"
