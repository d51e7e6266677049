"""The chat service: the one path from a visitor's question to a recorded answer.

`POST /chat`, `POST /chat/stream`, `POST /v1/chat/completions` (plain and streaming) and the fast path of
`POST /chat` all go through `ChatService`: it takes the conversation's history, the answer cache's slot, asks
the agent, remembers the turn and records the answer (the `chat_answered` log line, `kb_answers_total`, and
the owner's records, queued off the request path under a new answer id that the reply carries for feedback).
The routes only turn HTTP into a `Question`, and a `Reply` (or its events) back into HTTP.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Literal

import structlog

from agent.agent import Agent, Answer, AnswerEvent, Done, Sources, Text
from agent.conversations import ConversationStore, Turn
from agent.records.owner import OwnerRecords
from agent.records.served import new_answer_id, served
from api.cache import AnswerCache, cache_key
from api.metrics import Metrics
from api.schemas import sources_of
from api.services import Services

log = structlog.get_logger(__name__)

Surface = Literal["chat", "chat_stream", "openai", "openai_stream"]


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    surface: Surface
    session_id: str | None = None  # the conversation store gives the history and keeps the turn
    history: tuple[
        Turn, ...
    ] = ()  # or the caller's own earlier turns (OpenAI clients send them), kept nowhere
    use_cache: bool = True


@dataclass(frozen=True, slots=True)
class Reply:
    answer: Answer
    cached: bool
    seconds: float  # spent on this request
    answer_id: str | None = None  # what feedback names; None when answers are not recorded

    @property
    def response_time(self) -> float:
        """`model_info.response_time`: the answer's own time, or this request's for a cache hit."""
        return round(self.seconds if self.cached else self.answer.response_time, 4)


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a streamed reply."""

    reply: Reply


ReplyEvent = Sources | Text | Finished


@dataclass(frozen=True, slots=True)
class CacheSlot:
    """One question's place in the shared answer cache."""

    cache: AnswerCache
    key: str | None  # None: the answer depends on a conversation, which the key does not hold
    hit: Answer | None

    async def store(self, question: str, answer: Answer) -> None:
        if self.hit is None and self.key is not None and answer.cacheable:
            await self.cache.set(self.key, answer, question)


class ChatService:
    def __init__(self, services: Services) -> None:
        self._agent: Agent = services.agent
        self._cache: AnswerCache = services.cache
        self._conversations: ConversationStore = services.conversations
        self._metrics: Metrics = services.metrics
        self._owner: OwnerRecords | None = services.owner
        self._log_messages = services.settings.logging.log_messages

    async def answer(self, question: Question) -> Reply:
        started = time.perf_counter()
        history = await self._history(question)
        slot = await self._slot(question, history)
        answer = slot.hit or await self._agent.answer(question.text, history)
        return await self._finish(question, slot, answer, started)

    async def stream(self, question: Question) -> AsyncIterator[ReplyEvent]:
        """Looks up the history and the cache now (a failure there is an error response, not a broken
        stream); the events follow: sources, text pieces, then `Finished`. A cached answer comes as the same
        events, a line a piece."""
        started = time.perf_counter()
        history = await self._history(question)
        slot = await self._slot(question, history)
        events = _replayed(slot.hit) if slot.hit else self._agent.stream(question.text, history)
        return self._finishing(question, slot, events, started)

    async def _finishing(
        self, question: Question, slot: CacheSlot, events: AsyncGenerator[AnswerEvent, None], started: float
    ) -> AsyncIterator[ReplyEvent]:
        # Closed with this stream: a visitor who leaves stops the model now, not when the stream is collected.
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Done):
                    yield Finished(await self._finish(question, slot, event.answer, started))
                else:
                    yield event

    async def _history(self, question: Question) -> tuple[Turn, ...]:
        if question.session_id:
            return tuple(await self._conversations.turns(question.session_id))
        return question.history

    async def _slot(self, question: Question, history: tuple[Turn, ...]) -> CacheSlot:
        """The lookup comes before any model or store work: the key needs neither. An answer that depends
        on a conversation is neither served from nor written to the shared cache; nor is one asked for with
        the cache bypassed: otherwise a visitor could re-ask a popular question until a sampling model says
        something bad, and have that served to everyone for the cache's lifetime."""
        if history or not question.use_cache:
            return CacheSlot(self._cache, None, None)
        key = cache_key(question.text, self._agent.cache_context())
        hit = await self._cache.get(key) if self._cache.enabled else None
        if self._cache.enabled:
            self._metrics.cache_lookups.labels("hit" if hit else "miss").inc()
        return CacheSlot(self._cache, key, hit)

    async def _finish(self, question: Question, slot: CacheSlot, answer: Answer, started: float) -> Reply:
        await slot.store(question.text, answer)
        if question.session_id and answer.status == "success":
            # Apologies stay out of the conversation: they would only confuse follow-ups.
            turn = Turn(question=question.text, answer=answer.text, sources=tuple(sources_of(answer.sources)))
            await self._conversations.append(question.session_id, turn)
        answer_id = new_answer_id() if self._owner is not None else None
        reply = Reply(
            answer, cached=slot.hit is not None, seconds=time.perf_counter() - started, answer_id=answer_id
        )
        self._record(question, reply)
        return reply

    def _record(self, question: Question, reply: Reply) -> None:
        answer = reply.answer
        self._metrics.answers.labels(answer.provider, answer.status, str(reply.cached).lower()).inc()
        # The visitor's message only where LOG_MESSAGES allows it (it may hold personal data; e-mail addresses
        # and phone numbers are masked in every log line anyway).
        message = {"message": question.text} if self._log_messages else {}
        retrieval = None if reply.cached else answer.retrieval_time
        log.info(
            "chat_answered",
            **message,
            surface=question.surface,
            provider=answer.provider,
            status=answer.status,
            cached=reply.cached,
            degraded=answer.degraded,
            sources=len(answer.sources),
            seconds=round(reply.seconds, 4),
            **({"retrieval_seconds": round(retrieval, 5)} if retrieval is not None else {}),
        )
        if self._owner is not None and reply.answer_id is not None:
            record = served(
                reply.answer_id,
                question.text,
                answer,
                surface=question.surface,
                session_id=question.session_id,
                cached=reply.cached,
                seconds=reply.seconds,
            )
            self._owner.writer.put(record)  # never blocks: a full queue drops the record, not the answer


async def _replayed(answer: Answer) -> AsyncGenerator[AnswerEvent, None]:
    """A cached answer as the events of a generated one: its sources, then a few pieces at once."""
    yield Sources(answer.sources)
    for line in answer.text.splitlines(keepends=True):
        yield Text(line)
    yield Done(answer)
