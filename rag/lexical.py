"""BM25 over the chunks of one complete build (bm25s), saved beside the store.

The index belongs to a build: it is made from that build's chunks (title and heading path included, so
they count in ranking) the first time the build is served, saved under the build's name, and loaded from
disk afterwards. A new build gets a new index; an unchanged store never re-indexes at start.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TermStatistics:
    """Of one build's index: its passages, and how many of them hold each (stemmed) term."""

    documents: int
    frequency: dict[str, int]


_IDS_FILE = "chunk_ids.json"


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s
    import Stemmer

    # English stop words and Snowball stemming: "prices" and "price" must meet.
    tokens: list[list[str]] = bm25s.tokenize(
        texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False, show_progress=False
    )
    return tokens


class LexicalIndex:
    def __init__(self, folder: Path, index: Any, chunk_ids: list[str]) -> None:
        self.folder = folder
        self._index = index
        self._ids = chunk_ids
        self._lock = threading.Lock()  # bm25s retrieval is not documented as thread-safe

    @classmethod
    def build(cls, folder: Path, chunk_ids: list[str], texts: list[str]) -> LexicalIndex:
        """Index and save atomically: a half-written folder is never taken for an index."""
        import bm25s

        index = bm25s.BM25()
        if texts:
            index.index(_tokenize(texts), show_progress=False)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if texts:
            index.save(str(partial), show_progress=False)
        (partial / _IDS_FILE).write_text(json.dumps(chunk_ids))
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        log.info("lexical_index_built", folder=str(folder), chunks=len(chunk_ids))
        return cls(folder, index if texts else None, chunk_ids)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        if not (folder / _IDS_FILE).is_file():
            return None
        import bm25s

        chunk_ids = json.loads((folder / _IDS_FILE).read_text())
        index = bm25s.BM25.load(str(folder), mmap=True, show_progress=False) if chunk_ids else None
        return cls(folder, index, chunk_ids)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Chunk ids with their BM25 scores as a share of the best score the query could reach (0 to 1),
        best first; nothing for a query of stop words only.

        The bound, the sum over the query's terms of idf x (k1 + 1), is what a chunk saturated with every
        term would score: a match on one common word then stays small however few other matches there are.
        """
        if self._index is None:
            return []
        tokens = [t for t in _tokenize([query])[0] if t in self._index.vocab_dict]
        if not tokens:
            return []
        with self._lock:
            documents, scores = self._index.retrieve(
                [tokens], k=min(k, len(self._ids)), show_progress=False, n_threads=1
            )
        bound = self._bound(tokens)
        return [
            (self._ids[int(doc)], min(1.0, float(score) / bound))
            for doc, score in zip(documents[0], scores[0], strict=True)
            if float(score) > 0
        ]

    def term_statistics(self) -> TermStatistics:
        """How many chunks hold each term (the document frequencies BM25's IDF is made of)."""
        if self._index is None:
            return TermStatistics(len(self._ids), {})
        indptr = self._index.scores["indptr"]
        # bm25s keeps an empty token at the end of its vocabulary, with no column of scores.
        return TermStatistics(
            int(self._index.scores["num_docs"]),
            {
                term: int(indptr[column + 1] - indptr[column])
                for term, column in self._index.vocab_dict.items()
                if term and column + 1 < len(indptr)
            },
        )

    def _bound(self, tokens: list[str]) -> float:
        import math

        indptr = self._index.scores["indptr"]
        total = int(self._index.scores["num_docs"])
        bound = 0.0
        for token in tokens:
            column = self._index.vocab_dict[token]
            df = int(indptr[column + 1] - indptr[column])
            bound += math.log(1 + (total - df + 0.5) / (df + 0.5)) * (self._index.k1 + 1)
        return bound or 1.0
