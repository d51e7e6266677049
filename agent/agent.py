"""`Agent.answer(question) -> Answer`: retrieve, prompt, generate, and never leave a visitor empty-handed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import structlog

from agent.chain import GeneratorChain, StreamInterrupted, StreamStart
from agent.conversations import Turn
from agent.errors import AllTiersFailed
from agent.prompting import Prompt
from rag.errors import RetrievalError
from rag.retriever import Passage, Retriever

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    status: Literal["success", "error"]
    provider: str
    model: str
    response_time: float
    sources: tuple[Passage, ...] = field(default_factory=tuple)
    degraded: bool = False

    @property
    def cacheable(self) -> bool:
        """Only answers from the best tier available are cached: once a failing model recovers,
        visitors get its answers at once instead of a stale fallback for a whole cache TTL."""
        return self.status == "success" and not self.degraded


@dataclass(frozen=True, slots=True)
class Sources:
    passages: tuple[Passage, ...]


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a streamed answer: the whole answer, or an apology when it could not be given."""

    answer: Answer


AnswerEvent = Sources | Text | Done


class Agent:
    def __init__(self, retriever: Retriever, chain: GeneratorChain, contact_hint: str) -> None:
        self.retriever = retriever
        self.chain = chain
        self.contact_hint = contact_hint

    def cache_context(self) -> str:
        """Everything besides the question that changes an answer: the knowledge and the models."""
        return f"{self.retriever.knowledge_version}|{self.chain.signature()}"

    async def answer(self, question: str, history: tuple[Turn, ...] = ()) -> Answer:
        started = time.perf_counter()
        try:
            passages = await self._retrieve(question, history)
        except RetrievalError as exc:
            log.error("retrieval_failed", error=str(exc))
            return self._apology(started)
        try:
            generation = await self.chain.generate(Prompt(question, passages, history=history))
        except AllTiersFailed as exc:
            log.error("answer_failed", reason=str(exc))
            return self._apology(started, passages)
        return Answer(
            text=generation.text,
            status="success",
            provider=generation.provider,
            model=generation.model,
            response_time=_since(started),
            sources=passages,
            degraded=generation.degraded,
        )

    async def stream(self, question: str, history: tuple[Turn, ...] = ()) -> AsyncIterator[AnswerEvent]:
        """The sources first, then the answer as it is generated, then `Done`."""
        started = time.perf_counter()
        try:
            passages = await self._retrieve(question, history)
        except RetrievalError as exc:
            log.error("retrieval_failed", error=str(exc))
            yield Done(self._apology(started))
            return
        yield Sources(passages)
        pieces: list[str] = []
        start: StreamStart | None = None
        try:
            async for event in self.chain.stream(Prompt(question, passages, history=history)):
                if isinstance(event, StreamStart):
                    start = event
                    continue
                pieces.append(event)
                yield Text(event)
        except AllTiersFailed as exc:
            log.error("answer_failed", reason=str(exc))
            yield Done(self._apology(started, passages))
            return
        except StreamInterrupted as exc:
            log.error("answer_interrupted", reason=str(exc))
            yield Done(self._apology(started, passages, interrupted=True))
            return
        assert start is not None  # a tier that finished has started
        yield Done(
            Answer(
                text="".join(pieces).strip(),
                status="success",
                provider=start.provider,
                model=start.model,
                response_time=_since(started),
                sources=passages,
                degraded=start.degraded,
            )
        )

    async def _retrieve(self, question: str, history: tuple[Turn, ...]) -> tuple[Passage, ...]:
        """A follow-up ("how much is it?") names nothing: search with the previous question too."""
        query = f"{history[-1].question}\n{question}" if history else question
        return tuple(await asyncio.to_thread(self.retriever.retrieve, query))

    def _apology(
        self, started: float, passages: tuple[Passage, ...] = (), interrupted: bool = False
    ) -> Answer:
        opening = (
            "Sorry, the answer was interrupted." if interrupted else "Sorry, I can't answer that right now."
        )
        return Answer(
            text=f"{opening} {self.contact_hint}",
            status="error",
            provider="none",
            model="none",
            response_time=_since(started),
            sources=passages,
        )

    async def aclose(self) -> None:
        await self.chain.aclose()


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)
