"""`Agent.answer(question) -> Answer`: retrieve, prompt, generate, and never leave a visitor empty-handed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import structlog

from agent.chain import GeneratorChain, StreamInterrupted, StreamStart
from agent.conversations import Turn
from agent.errors import AllTiersFailed
from agent.handoff import asks_for_person
from agent.prompting import SYSTEM_INSTRUCTIONS, Prompt
from agent.scrub import LeakGuard, SecretScrubber
from agent.smalltalk import SmallTalkReplies, recognise
from rag.errors import RetrievalError
from rag.relevance import RelevanceCheck, select
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
    retrieval_time: float | None = None  # seconds the retrieval step took, for the log

    @property
    def offer_contact(self) -> bool:
        """A person may help where the bot could not: nothing in the knowledge was about the question, it
        could not be answered right now, or the visitor asked for a person."""
        return self.provider == "none" and self.model in ("no-match", "handoff", "none")

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


@dataclass(frozen=True, slots=True)
class Curated:
    """An answer the site owner wrote for questions that mean the same as this one."""

    id: str
    answer: str
    sources: tuple[str, ...]
    similarity: float


class CuratedAnswers(Protocol):
    @property
    def active(self) -> bool:
        """False when there are none: a question then costs nothing here."""
        ...

    def find(self, question: str) -> Curated | None:
        """Blocking (embeds the question)."""
        ...


@dataclass(frozen=True, slots=True)
class Replies:
    """What the agent says without a model: to small talk, and when the knowledge has nothing relevant."""

    contact_hint: str
    no_answer: str = "Sorry, I couldn't find anything about that in our information."
    refusal: str = "Sorry, I can only help with questions about our company and what it offers."
    small_talk: SmallTalkReplies | None = field(default_factory=SmallTalkReplies)  # None: not recognised
    # To a visitor asking for a person; None: such a request is a question like any other.
    handoff: str | None = (
        "Of course. Leave your name and e-mail below, and a person from our team will get back to you."
    )


class Agent:
    def __init__(
        self,
        retriever: Retriever,
        chain: GeneratorChain,
        replies: Replies,
        relevance_floor: float = 0.0,
        max_answer_chars: int = 4000,
        scrubber: SecretScrubber | None = None,
        relevance: RelevanceCheck | None = None,
        curated: CuratedAnswers | None = None,
    ) -> None:
        self.retriever = retriever
        self.curated = curated  # the owner's answers, tried before anything else
        self.chain = chain
        self.replies = replies
        # Passages below the floor are never used; `relevance` then decides whether what is left is about
        # the question at all (None: the floor alone decides).
        self.relevance_floor = relevance_floor
        self.relevance = relevance
        self.max_answer_chars = max_answer_chars
        self.scrubber = scrubber or SecretScrubber()
        self.leak_guard = LeakGuard(SYSTEM_INSTRUCTIONS)

    def prepare(self) -> None:
        """Measures what answering needs of the current knowledge (the relevance check's calibration, a
        second or two) so that no visitor's question waits for it. Blocking: run it in a thread, at start
        and after each reindex."""
        if self.relevance is not None:
            self.relevance.calibration(self.retriever)

    def cache_context(self) -> str:
        """Everything besides the question that changes an answer: the knowledge and the models."""
        return f"{self.retriever.knowledge_version}|{self.chain.signature()}"

    async def answer(self, question: str, history: tuple[Turn, ...] = ()) -> Answer:
        """The whole answer at once: the stream, collected. Each tier's answer is held until complete, so
        one that fails part-way falls through to the next tier instead of ending in an apology."""
        async with contextlib.aclosing(self._events(question, history, held=True)) as events:
            async for event in events:
                if isinstance(event, Done):
                    return event.answer
        raise AssertionError("an answer stream always ends with Done")

    def stream(self, question: str, history: tuple[Turn, ...] = ()) -> AsyncGenerator[AnswerEvent, None]:
        """The sources, then the answer as it is generated, then `Done`."""
        return self._events(question, history, held=False)

    async def _events(
        self, question: str, history: tuple[Turn, ...], *, held: bool
    ) -> AsyncGenerator[AnswerEvent, None]:
        started = time.perf_counter()
        if (curated := await self._curated(question, started)) is not None:
            async for told in _told(curated):
                yield told
            return
        if (chat := self._small_talk(question, started)) is not None:
            async for told in _told(chat):
                yield told
            return
        if self.replies.handoff is not None and asks_for_person(question):
            async for told in _told(_said(self.replies.handoff, "handoff", started)):
                yield told
            return
        retrieving = time.perf_counter()
        try:
            passages = await self._retrieve(question, history)
        except RetrievalError as exc:
            log.error("retrieval_failed", error=str(exc))
            yield Done(self._apology(started))
            return
        retrieval_time = time.perf_counter() - retrieving
        if not passages:
            async for told in _told(self._no_answer(started)):
                yield told
            return
        pieces: list[str] = []
        start: StreamStart | None = None
        room = self.max_answer_chars
        scrub = self.scrubber.stream()
        prompt = Prompt(question, passages, history=history)
        stream = self.chain.stream(prompt, held=held, max_chars=self.max_answer_chars)
        try:
            async for event in stream:
                if isinstance(event, StreamStart):
                    # The sources come with the answer's first piece: an answer that turns out to be "I
                    # don't know" (no tier found anything that answers) shows none.
                    start = event
                    yield Sources(passages)
                    continue
                piece = scrub.feed(event)
                if self.leak_guard.leaks("".join(pieces) + piece):
                    tier = start.provider if start is not None else None
                    log.warning("answer_withheld", reason="repeats the system instructions", provider=tier)
                    yield Done(self._withheld(started, passages))
                    return
                if len(piece) >= room:  # the cap: end the answer here, and stop the model
                    pieces.append(_cut(piece, room))
                    yield Text(pieces[-1])
                    log.info("answer_capped", max_chars=self.max_answer_chars)
                    break
                room -= len(piece)
                if piece:
                    pieces.append(piece)
                    yield Text(piece)
            else:
                if tail := _cut(scrub.flush(), room):
                    pieces.append(tail)
                    yield Text(tail)
        except AllTiersFailed as exc:
            if exc.reason == "no_match":  # the last tier found nothing in the passages that answers it
                async for told in _told(self._no_answer(started)):
                    yield told
                return
            log.error("answer_failed", reason=str(exc))
            yield Done(self._apology(started, passages))
            return
        except StreamInterrupted as exc:
            log.error("answer_interrupted", reason=str(exc))
            yield Done(self._apology(started, passages, interrupted=True))
            return
        finally:
            await stream.aclose()
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
                retrieval_time=retrieval_time,
            )
        )

    async def _retrieve(self, question: str, history: tuple[Turn, ...]) -> tuple[Passage, ...]:
        """The passages at or above the relevance floor, if the relevance check finds them about the
        question. A follow-up ("how much is it?") names nothing: it is searched, and judged, with the
        previous question too. The check calibrates itself on a knowledge version's first question: in the
        worker thread, with the search."""
        query = f"{history[-1].question}\n{question}" if history else question
        selection = await asyncio.to_thread(
            select, self.retriever, query, floor=self.relevance_floor, check=self.relevance
        )
        if selection.found and not selection.passages:
            why = selection.verdict.log_fields() if selection.verdict else {"reason": "below the floor"}
            log.info("nothing_relevant", best_score=selection.best_score, floor=self.relevance_floor, **why)
        return tuple(selection.passages)

    async def _curated(self, question: str, started: float) -> Answer | None:
        if self.curated is None or not self.curated.active:
            return None
        try:
            found = await asyncio.to_thread(self.curated.find, question)
        except RetrievalError as exc:  # the embedder failed: retrieval will say so, or answer without it
            log.error("curated_lookup_failed", error=str(exc))
            return None
        if found is None:
            return None
        sources = tuple(
            Passage(
                id=f"curated:{found.id}:{n}", source=s, title=s, headings="", text="", score=found.similarity
            )
            for n, s in enumerate(found.sources)
        )
        return Answer(
            text=found.answer,
            status="success",
            provider="curated",
            model=found.id,
            response_time=_since(started),
            sources=sources,
        )

    def _small_talk(self, question: str, started: float) -> Answer | None:
        replies = self.replies.small_talk
        kind = recognise(question) if replies is not None else None
        if replies is None or kind is None:
            return None
        return _said(replies.reply(kind), "small-talk", started)

    def _no_answer(self, started: float) -> Answer:
        """Nothing in the knowledge is about the question: say so rather than let a model guess."""
        return _said(f"{self.replies.no_answer} {self.replies.contact_hint}", "no-match", started)

    def _withheld(self, started: float, passages: tuple[Passage, ...]) -> Answer:
        """An answer that turned into the system instructions ends as an error, never cached: a streaming
        visitor's widget replaces what it had with the refusal."""
        return Answer(
            text=self.replies.refusal,
            status="error",
            provider="none",
            model="withheld",
            response_time=_since(started),
            sources=passages,
        )

    def _apology(
        self, started: float, passages: tuple[Passage, ...] = (), interrupted: bool = False
    ) -> Answer:
        opening = (
            "Sorry, the answer was interrupted." if interrupted else "Sorry, I can't answer that right now."
        )
        return Answer(
            text=f"{opening} {self.replies.contact_hint}",
            status="error",
            provider="none",
            model="none",
            response_time=_since(started),
            sources=passages,
        )

    async def aclose(self) -> None:
        await self.chain.aclose()


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, ended at a word with an ellipsis when it had to be cut."""
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - 1)]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip() + "\u2026"


def _said(text: str, model: str, started: float) -> Answer:
    """An answer the agent gives itself, without a model or a source."""
    return Answer(text=text, status="success", provider="none", model=model, response_time=_since(started))


async def _told(answer: Answer) -> AsyncIterator[AnswerEvent]:
    yield Sources(answer.sources)
    yield Text(answer.text)
    yield Done(answer)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)
