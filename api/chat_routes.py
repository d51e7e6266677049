"""The visitor's endpoints: `POST /chat`, `POST /chat/stream` and the conversation's history."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Response
from fastapi.responses import StreamingResponse

from agent.agent import Sources, Text
from api import sse
from api.chat import Question, Reply, ReplyEvent, Surface
from api.deps import BudgetDep, ChatDep, ServicesDep, SessionId, SettingsDep
from api.origins import check_origin
from api.rate_limits import Rule
from api.responses import RATE_LIMITED, VISITOR_ERRORS
from api.schemas import (
    ChatRequest,
    ChatResponse,
    HistoryCleared,
    HistoryMessage,
    HistoryResponse,
    ModelInfo,
    Source,
    check_length,
    source_models,
    sources_of,
)
from api.sse import SSE_HEADERS

router = APIRouter()
ORIGIN_CHECK = Depends(check_origin)


def chat_question(body: ChatRequest, surface: Surface) -> Question:
    return Question(body.message, surface, session_id=body.session_id, use_cache=body.use_cache)


def chat_response(reply: Reply) -> Response:
    """The JSON of a /chat answer, serialized once: the model is valid by construction, and FastAPI would
    validate and encode it again."""
    body = ChatResponse(
        response=reply.answer.text,
        status=reply.answer.status,
        cached=reply.cached,
        sources=source_models(reply.answer.sources),
        model_info=_model_info(reply),
        answer_id=reply.answer_id,
        offer_contact=reply.answer.offer_contact,
    )
    return Response(body.model_dump_json(), media_type="application/json")


@router.post(
    "/chat",
    response_model=ChatResponse,
    responses={**RATE_LIMITED, **VISITOR_ERRORS},
    dependencies=[ORIGIN_CHECK],
)
async def chat(body: ChatRequest, chat: ChatDep, budget: BudgetDep, settings: SettingsDep) -> Response:
    await budget.spend(Rule.CHAT)
    check_length(body.message, settings.api.max_message_chars, "message")
    return chat_response(await chat.answer(chat_question(body, "chat")))


@router.post(
    "/chat/stream",
    dependencies=[ORIGIN_CHECK],
    responses={
        **RATE_LIMITED,
        **VISITOR_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "sources, token..., done | error"},
    },
)
async def chat_stream(
    body: ChatRequest, chat: ChatDep, budget: BudgetDep, settings: SettingsDep
) -> StreamingResponse:
    """The answer as Server-Sent Events: `sources`, then `token` pieces, then `done` (or `error`)."""
    await budget.spend(Rule.CHAT)
    check_length(body.message, settings.api.max_message_chars, "message")
    events = await chat.stream(chat_question(body, "chat_stream"))
    return StreamingResponse(_server_sent(events), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get(
    "/history/{session_id}",
    response_model=HistoryResponse,
    responses={**RATE_LIMITED, **VISITOR_ERRORS},
    dependencies=[ORIGIN_CHECK],
)
async def get_history(session_id: SessionId, services: ServicesDep, budget: BudgetDep) -> HistoryResponse:
    """The conversation so far (empty when unknown or expired), for a widget restoring its log."""
    await budget.spend(Rule.HISTORY)
    messages: list[HistoryMessage] = []
    for turn in await services.conversations.turns(session_id):
        messages.append(HistoryMessage(role="user", content=turn.question))
        sources = [Source.model_validate(s) for s in turn.sources]
        messages.append(HistoryMessage(role="assistant", content=turn.answer, sources=sources))
    return HistoryResponse(session_id=session_id, messages=messages)


@router.delete(
    "/history/{session_id}",
    response_model=HistoryCleared,
    responses={**RATE_LIMITED, **VISITOR_ERRORS},
    dependencies=[ORIGIN_CHECK],
)
async def delete_history(session_id: SessionId, services: ServicesDep, budget: BudgetDep) -> HistoryCleared:
    await budget.spend(Rule.HISTORY)
    removed = await services.conversations.delete(session_id)
    return HistoryCleared(message=f"Conversation deleted. Removed {removed} turns", removed=removed)


def _model_info(reply: Reply) -> ModelInfo:
    answer = reply.answer
    return ModelInfo(provider=answer.provider, model=answer.model, response_time=reply.response_time)


async def _server_sent(events: AsyncIterator[ReplyEvent]) -> AsyncIterator[str]:
    async for event in events:
        if isinstance(event, Sources):
            yield sse.event("sources", sources_of(event.passages))
        elif isinstance(event, Text):
            yield sse.event("token", {"text": event.text})
        elif event.reply.answer.status == "success":
            reply = event.reply
            done = {
                "status": "success",
                "cached": reply.cached,
                "model_info": _model_info(reply).model_dump(),
                "answer_id": reply.answer_id,
                "offer_contact": reply.answer.offer_contact,
            }
            yield sse.event("done", done)
        else:
            answer = event.reply.answer
            yield sse.event("error", {"message": answer.text, "offer_contact": answer.offer_contact})
