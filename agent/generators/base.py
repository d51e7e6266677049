"""The one interface every tier implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from agent.errors import FallThroughError
from agent.prompting import Prompt

TierState = Literal["ready", "idle", "not configured", "unavailable"]


@dataclass(frozen=True, slots=True)
class TierStatus:
    state: TierState  # ready: can answer now; idle: can answer after loading; the others cannot
    detail: str = ""
    loaded: bool | None = None  # for tiers that hold a model in memory

    @property
    def usable(self) -> bool:
        return self.state in ("ready", "idle")


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling settings; each tier passes on the ones its backend supports."""

    max_tokens: int = 512
    temperature: float = 0.3
    top_p: float = 0.95
    top_k: int = 40
    repetition_penalty: float = 1.1


@runtime_checkable
class Generator(Protocol):
    provider: str
    model: str

    def status(self) -> TierStatus:
        """Cheap: never loads a model or calls the network."""
        ...

    def stream(self, prompt: Prompt, *, timeout: float) -> AsyncIterator[str]:
        """The answer in pieces as they are generated, within `timeout` seconds, or a `GenerationError`
        saying why not, raised before or between pieces. A tier's only way to answer: a plain answer is
        this stream, collected."""
        ...

    async def aclose(self) -> None: ...


class StreamingGenerator(ABC):
    """A tier written as its one streaming method, with the plain answer collected from it."""

    provider: str
    model: str

    @abstractmethod
    def stream(self, prompt: Prompt, *, timeout: float) -> AsyncIterator[str]: ...

    async def generate(self, prompt: Prompt, *, timeout: float) -> str:
        """The whole answer: the stream, collected."""
        text = "".join([piece async for piece in self.stream(prompt, timeout=timeout)]).strip()
        if not text:
            raise FallThroughError(f"{self.provider} gave no text", reason="empty")
        return text
