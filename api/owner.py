"""The owner's side: feedback on answers, the knowledge-gap report, curated answers and transcripts.

Every database call runs in a worker thread; a database that cannot be reached is `RecordsUnavailable` (503),
never a stack trace. Curated answers changed here, or by another replica, are reloaded into the agent's index,
and cached answers the change makes stale are dropped from the answer cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog
from sqlalchemy.exc import SQLAlchemyError

from agent.records.curated import CuratedChange
from agent.records.gaps import GapRow, group_gaps
from agent.records.owner import OwnerRecords
from agent.records.repository import (
    ConversationFilter,
    ConversationPage,
    CuratedEntry,
    Rating,
    RecordedAnswer,
)
from api.cache import AnswerCache
from api.services import Services
from rag.embedder import Embedder
from rag.errors import RetrievalError
from rag.retriever import Retriever

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Wrong questions over a week rarely reach this; past it the report groups the newest ones.
GAP_QUESTIONS_MAX = 5000
_FEEDBACK_WAIT = 5.0  # seconds a rating waits for its answer's record, still in the write queue


class RecordsError(Exception):
    """Base of the owner's side's errors; `status` is the HTTP status it maps to."""

    status = 500


class RecordsOff(RecordsError):
    status = 404

    def __init__(self) -> None:
        super().__init__("Answers are not recorded on this service (RECORD_ANSWERS=false).")


class RecordsUnavailable(RecordsError):
    status = 503

    def __init__(self) -> None:
        super().__init__("The records database cannot be reached right now; please try again shortly.")


class UnknownRecord(RecordsError):
    status = 404


@dataclass(frozen=True, slots=True)
class GapReport:
    since: datetime
    questions: int  # gap questions read (at most GAP_QUESTIONS_MAX)
    rows: list[GapRow]


class OwnerService:
    def __init__(self, services: Services) -> None:
        self._owner = services.owner
        self._cache: AnswerCache = services.cache
        self._embedder: Embedder = services.embedder
        self._retriever: Retriever = services.agent.retriever
        self._comment_chars = services.settings.records.feedback_comment_chars

    @property
    def owner(self) -> OwnerRecords:
        if self._owner is None:
            raise RecordsOff
        return self._owner

    # -- visitors' feedback ---------------------------------------------------------------------------

    async def rate(self, answer_id: str, rating: Rating, comment: str | None) -> None:
        owner = self.owner
        comment = (comment or "").strip()[: self._comment_chars] or None
        if owner.writer.unwritten(answer_id):  # answered a moment ago: its record is still on its way
            await asyncio.to_thread(owner.writer.wait_written, answer_id, _FEEDBACK_WAIT)
        now = datetime.now(UTC)
        if not await self._call(owner.records.rate, answer_id, rating, comment, now):
            raise UnknownRecord("No answer with this id (it may be older than the retention period).")

    # -- reports --------------------------------------------------------------------------------------

    async def gaps(self, days: int) -> GapReport:
        owner = self.owner
        since = datetime.now(UTC) - timedelta(days=days)
        answers = await self._call(owner.records.gap_questions, since, GAP_QUESTIONS_MAX)
        similarity = owner.settings.gap_similarity
        rows = await asyncio.to_thread(
            group_gaps, answers, self._embedder.embed, self._retriever.nearest, similarity
        )
        return GapReport(since=since, questions=len(answers), rows=rows)

    async def conversations(self, where: ConversationFilter, limit: int, offset: int) -> ConversationPage:
        return await self._call(self.owner.records.conversations, where, limit, offset)

    async def conversation(self, conversation: str) -> list[RecordedAnswer]:
        turns = await self._call(self.owner.records.conversation, conversation)
        if not turns:
            raise UnknownRecord("No conversation with this id (it may be older than the retention period).")
        return turns

    # -- curated answers ------------------------------------------------------------------------------

    async def curated(self) -> list[CuratedEntry]:
        return await self._call(self.owner.records.curated)

    async def curated_entry(self, entry_id: str) -> CuratedEntry:
        entry = await self._call(self.owner.records.curated_entry, entry_id)
        if entry is None:
            raise UnknownRecord("No curated answer with this id.")
        return entry

    async def add_curated(self, questions: list[str], answer: str, sources: list[str]) -> CuratedEntry:
        entry = await self._call(
            self.owner.records.add_curated, questions, answer, sources, datetime.now(UTC)
        )
        await self.reload_curated()
        return entry

    async def change_curated(
        self, entry_id: str, questions: list[str], answer: str, sources: list[str]
    ) -> CuratedEntry:
        now = datetime.now(UTC)
        changed = await self._call(
            self.owner.records.change_curated, entry_id, questions, answer, sources, now
        )
        if changed is None:
            raise UnknownRecord("No curated answer with this id.")
        await self.reload_curated()
        return changed[1]

    async def remove_curated(self, entry_id: str) -> None:
        if await self._call(self.owner.records.remove_curated, entry_id) is None:
            raise UnknownRecord("No curated answer with this id.")
        await self.reload_curated()

    async def reload_curated(self) -> int:
        """Reloads the curated answers if they changed (here or through another replica) and drops the
        cached answers the change makes stale; returns how many were dropped."""
        change = await self._call(self.owner.curated.refresh)
        if change is None:
            return 0
        dropped = await self._drop_stale(change)
        log.info(
            "curated_answers_reloaded",
            curated=len(self.owner.curated),
            changed=len(change.ids),
            uncached=dropped,
        )
        return dropped

    async def watch_curated(self, every: float) -> None:
        """Runs until cancelled: picks up curated answers changed through other replicas."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.reload_curated()
            except RecordsUnavailable:
                continue  # logged; the next round tries again
            except RetrievalError as exc:  # the embedder failed on the new questions: tried again next round
                log.error("curated_reload_failed", error=str(exc))

    async def _drop_stale(self, change: CuratedChange) -> int:
        entries = [entry async for entry in self._cache.entries()]
        if not entries:
            return 0
        vectors = await asyncio.to_thread(self._embedder.embed, [e.question for e in entries])
        threshold = self.owner.curated.threshold
        stale = [
            entry.key
            for entry, vector in zip(entries, vectors, strict=True)
            if change.touches(entry.answer.provider, entry.answer.model, vector, threshold)
        ]
        return await self._cache.discard(stale)

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        return await records_call(function, *args)


async def records_call(function: Callable[..., T], *args: object) -> T:
    """A blocking records query, in a worker thread; a database that cannot be reached is a 503."""
    try:
        return await asyncio.to_thread(function, *args)
    except SQLAlchemyError as exc:
        log.error("records_query_failed", error=str(exc).splitlines()[0])
        raise RecordsUnavailable from exc
