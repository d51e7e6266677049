"""Token counts in the embedding model's own vocabulary, for chunk budgets.

Only the model's `tokenizer.json` is read (the Rust `tokenizers` library, no torch): chunking a folder
must not wait for the model itself. A model folder without one falls back to an estimate from words.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

_WORD = re.compile(r"\w+|[^\w\s]")
_TOKENS_PER_WORD = 4 / 3  # English prose through a WordPiece or BPE vocabulary, roughly


class TokenCounter(Protocol):
    window: int | None  # the most tokens the model reads at once; None when unknown

    def count(self, texts: list[str]) -> list[int]: ...

    def starts(self, text: str) -> list[int]:
        """Where in `text` (character offsets) each of its tokens starts."""
        ...


class ModelTokens:
    def __init__(self, tokenizer: Any, window: int | None) -> None:
        # The file may carry the training set-up (truncated and padded to 128): counts need neither.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.window = window

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def starts(self, text: str) -> list[int]:
        return [int(start) for start, _ in self._tokenizer.encode(text, add_special_tokens=False).offsets]


class WordTokens:
    """An estimate for models that ship no `tokenizer.json`."""

    def __init__(self, window: int | None = None) -> None:
        self.window = window

    def count(self, texts: list[str]) -> list[int]:
        return [math.ceil(len(_WORD.findall(text)) * _TOKENS_PER_WORD) for text in texts]

    def starts(self, text: str) -> list[int]:
        words = [word.start() for word in _WORD.finditer(text)]
        estimate = math.ceil(len(words) * _TOKENS_PER_WORD)
        return [words[int(token / _TOKENS_PER_WORD)] for token in range(estimate)]


@lru_cache(maxsize=4)
def tokens_for(model_path: Path) -> TokenCounter:
    window = _window(model_path)
    tokenizer_file = model_path / "tokenizer.json"
    if not tokenizer_file.is_file():
        log.warning("tokenizer_missing", model=str(model_path), detail="chunk sizes are estimated from words")
        return WordTokens(window)
    from tokenizers import Tokenizer

    return ModelTokens(Tokenizer.from_file(str(tokenizer_file)), window)


def _window(model_path: Path) -> int | None:
    config = model_path / "sentence_bert_config.json"
    try:
        value = json.loads(config.read_text()).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None
