"""The one interface every tier implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from agent.prompting import Prompt

TierState = Literal["ready", "idle", "not configured", "unavailable"]


@dataclass(frozen=True, slots=True)
class TierStatus:
    state: TierState  # ready: can answer now; idle: can answer after loading; the others cannot
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.state in ("ready", "idle")


@runtime_checkable
class Generator(Protocol):
    provider: str
    model: str

    def status(self) -> TierStatus:
        """Cheap: never loads a model or calls the network."""
        ...

    async def generate(self, prompt: Prompt) -> str:
        """The answer text, or a `GenerationError` saying why not."""
        ...

    async def aclose(self) -> None: ...
