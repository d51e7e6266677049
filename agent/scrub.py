"""Secrets (API keys, the admin token) never leave in an answer, even one a model was tricked into writing."""

from __future__ import annotations

import re
import unicodedata

REDACTED = "[redacted]"


class SecretScrubber:
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))
        # A streamed secret may arrive split over pieces: this many characters wait for the next piece.
        self._hold = max((len(s) for s in self._secrets), default=1) - 1

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def stream(self) -> StreamScrubber:
        return StreamScrubber(self)


class StreamScrubber:
    """Cleans a text that arrives in pieces; what it holds back is given out by `flush`."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        self._scrubber = scrubber
        self._pending = ""

    def feed(self, piece: str) -> str:
        text = self._scrubber.clean(self._pending + piece)
        hold = self._scrubber._hold
        if hold <= 0:
            self._pending = ""
            return text
        self._pending = text[-hold:]
        return text[:-hold]

    def flush(self) -> str:
        text, self._pending = self._scrubber.clean(self._pending), ""
        return text


class LeakGuard:
    """Notices an answer that repeats the system instructions (a model talked into printing them): any run
    of `words` consecutive words of the instructions, compared without case or punctuation."""

    def __init__(self, instructions: str, words: int = 8) -> None:
        self._words = words
        tokens = _words(instructions)
        self._runs = {tuple(tokens[i : i + words]) for i in range(len(tokens) - words + 1)}

    def leaks(self, text: str) -> bool:
        tokens = _words(text)
        return any(
            tuple(tokens[i : i + self._words]) in self._runs for i in range(len(tokens) - self._words + 1)
        )


def _words(text: str) -> list[str]:
    """Words as a reader sees them: invisible format characters (zero-width spaces and joiners, soft
    hyphens, direction marks) dropped and look-alike forms (full-width letters, ligatures) folded, so that
    none of them can split a word and slip a repeated instruction past the comparison."""
    visible = "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")
    return re.findall(r"[a-z0-9']+", visible.casefold())
