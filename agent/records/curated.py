"""The curated answers in memory: every example question embedded once, a visitor's question matched by cosine
similarity before any retrieval.

Each process keeps its own copy and reloads it when the database says an answer changed (after its own admin
call at once, every CURATED_REFRESH_SECONDS for changes made through another replica). A reload reports what
changed, so that the answer cache can drop what the change makes stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from agent.agent import Curated
from agent.records.repository import CuratedEntry, Records

Embed = Callable[[Sequence[str]], list[list[float]]]
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class CuratedChange:
    """Curated answers added, changed or removed by a reload: their ids, and every example question they had
    before or have now, embedded."""

    ids: frozenset[str]
    vectors: Matrix

    def touches(self, provider: str, model: str, vector: Sequence[float], threshold: float) -> bool:
        """Whether a cached answer (its provider and model, and its question's vector) may be stale: served
        from one of these curated answers, or asked in words one of them now matches (or used to)."""
        if provider == "curated" and model in self.ids:
            return True
        return (
            bool(self.vectors.size)
            and float(np.max(self.vectors @ np.asarray(vector, np.float32))) >= threshold
        )


@dataclass(frozen=True, slots=True)
class _Snapshot:
    entries: dict[str, CuratedEntry]
    owners: list[str]  # the curated answer of each matrix row
    matrix: Matrix
    vectors: dict[str, Matrix]  # per entry, for the next reload's change
    versions: dict[str, datetime]


_EMPTY = _Snapshot({}, [], np.zeros((0, 0), np.float32), {}, {})


class CuratedIndex:
    def __init__(
        self, records: Records, embed: Embed, embed_query: Callable[[str], list[float]], threshold: float
    ) -> None:
        self.records = records
        self.threshold = threshold
        self._embed = embed
        self._embed_query = embed_query
        self._snapshot = _EMPTY
        self._reloading = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether there is anything to match: without curated answers a question costs nothing here."""
        return bool(self._snapshot.owners)

    def __len__(self) -> int:
        return len(self._snapshot.entries)

    def find(self, question: str) -> Curated | None:
        """The curated answer whose example question is nearest in meaning, if it is near enough. Blocking
        (embeds the question; the retrieval that may follow reuses the vector)."""
        snapshot = self._snapshot
        if not snapshot.owners:
            return None
        scores = snapshot.matrix @ np.asarray(self._embed_query(question), np.float32)
        best = int(np.argmax(scores))
        if float(scores[best]) < self.threshold:
            return None
        entry = snapshot.entries[snapshot.owners[best]]
        return Curated(
            id=entry.id, answer=entry.answer, sources=entry.sources, similarity=float(scores[best])
        )

    def refresh(self) -> CuratedChange | None:
        """Reloads from the database if anything changed there; returns what changed. Blocking."""
        with self._reloading:
            versions = self.records.curated_versions()
            old = self._snapshot
            if versions == old.versions:
                return None
            entries = {entry.id: entry for entry in self.records.curated()}
            versions = {entry.id: entry.updated_at for entry in entries.values()}
            changed = {
                key for key in set(versions) | set(old.versions) if versions.get(key) != old.versions.get(key)
            }
            vectors = {
                key: old.vectors[key] if key not in changed else self._vectors(entries[key].questions)
                for key in entries
            }
            owners = [key for key in entries for _ in entries[key].questions]
            matrix = np.vstack([vectors[key] for key in entries]) if entries else _EMPTY.matrix
            self._snapshot = _Snapshot(entries, owners, matrix, vectors, versions)
            touched = [old.vectors[key] for key in changed if key in old.vectors]
            touched += [vectors[key] for key in changed if key in vectors]
            return CuratedChange(frozenset(changed), _stack(touched))

    def _vectors(self, questions: Iterable[str]) -> Matrix:
        return np.asarray(self._embed(list(questions)), np.float32)


def _stack(parts: list[Matrix]) -> Matrix:
    parts = [part for part in parts if part.size]
    return np.vstack(parts) if parts else np.zeros((0, 0), np.float32)
