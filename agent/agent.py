"""`Agent.answer(question) -> Answer`: retrieve, prompt, generate, and never leave a visitor empty-handed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

import structlog

from agent.chain import GeneratorChain
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


class Agent:
    def __init__(self, retriever: Retriever, chain: GeneratorChain, contact_hint: str) -> None:
        self.retriever = retriever
        self.chain = chain
        self.contact_hint = contact_hint

    def cache_context(self) -> str:
        """Everything besides the question that changes an answer: the knowledge and the models."""
        return f"{self.retriever.knowledge_version}|{self.chain.signature()}"

    async def answer(self, question: str) -> Answer:
        started = time.perf_counter()
        try:
            passages = tuple(await asyncio.to_thread(self.retriever.retrieve, question))
        except RetrievalError as exc:
            log.error("retrieval_failed", error=str(exc))
            return self._apology(started)
        try:
            generation = await self.chain.generate(Prompt(question, passages))
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

    def _apology(self, started: float, passages: tuple[Passage, ...] = ()) -> Answer:
        return Answer(
            text=f"Sorry, I can't answer that right now. {self.contact_hint}",
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
