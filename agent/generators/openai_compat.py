"""Any OpenAI-compatible chat-completions server: vLLM, Ollama, llama.cpp server, TGI, or OpenAI itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agent.errors import FallThroughError, GenerationError, TierUnavailable, http_error, transport_error
from agent.generators.base import GenerationParams, StreamingGenerator, TierStatus
from agent.generators.streaming import guarded
from agent.prompting import Prompt
from agent.retry import parse_retry_after

# Self-hosted servers ignore a key, but the client insists on having one.
_NO_KEY = "not-needed"


class OpenAICompatGenerator(StreamingGenerator):
    provider = "openai"

    def __init__(
        self,
        base_url: str | None,
        model: str | None,
        *,
        api_key: str | None = None,
        params: GenerationParams | None = None,
    ) -> None:
        self.model = model or ""
        self._base_url = base_url
        self._api_key = api_key
        self._params = params or GenerationParams()
        self._client: Any = None

    def status(self) -> TierStatus:
        if not self._base_url:
            return TierStatus("not configured", "OPENAI_BASE_URL is not set")
        if not self.model:
            return TierStatus("not configured", "OPENAI_MODEL is not set")
        return TierStatus("ready")

    def warm_up(self) -> None:
        """Builds the SDK client off the request path (its import takes most of a second)."""
        if self._client is None and self.status().usable:
            from openai import AsyncOpenAI

            # max_retries=0: the chain owns retries, and stacking two retry loops multiplies the wait.
            self._client = AsyncOpenAI(
                base_url=self._base_url, api_key=self._api_key or _NO_KEY, max_retries=0
            )

    async def _ready(self) -> Any:
        if self._client is None:
            await asyncio.to_thread(self.warm_up)
        return self._client

    def _request(self, prompt: Prompt, timeout: float) -> dict[str, Any]:
        if not self.status().usable:
            raise TierUnavailable(self.status().detail, reason="not_configured")
        params = self._params
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user_message()},
            ],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            # Not in OpenAI's own API; vLLM, llama.cpp and TGI honour them, others ignore them.
            "extra_body": {"top_k": params.top_k, "repetition_penalty": params.repetition_penalty},
            "timeout": timeout,
        }

    def stream(self, prompt: Prompt, *, timeout: float) -> AsyncIterator[str]:
        return guarded(self._pieces(prompt, timeout), classify, "OpenAI-compatible server")

    async def _pieces(self, prompt: Prompt, timeout: float) -> AsyncIterator[str]:
        chunks = await (await self._ready()).chat.completions.create(
            **self._request(prompt, timeout), stream=True
        )
        kind = chunks.response.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):
            # A proxy's error page or a server that ignored `stream`: the SDK would read no event from it
            # and report an empty answer, hiding a broken setup.
            raise FallThroughError(
                f"OpenAI-compatible server sent {kind or 'no content type'}, not an event stream",
                reason="malformed",
                unhealthy=True,
            )
        produced = False
        async for chunk in chunks:
            choice = chunk.choices[0] if chunk.choices else None
            if choice is None:
                continue
            if choice.finish_reason == "content_filter" and not produced:
                raise FallThroughError("OpenAI-compatible server filtered the answer", reason="blocked")
            piece = (choice.delta.content if choice.delta else None) or ""
            produced = produced or bool(piece.strip())
            yield piece

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def classify(exc: BaseException) -> GenerationError:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return http_error(
            "OpenAI-compatible server", exc.status_code, parse_retry_after(exc.response.headers)
        )
    if isinstance(exc, openai.APITimeoutError):
        return transport_error("OpenAI-compatible server", TimeoutError())
    if isinstance(exc, openai.APIConnectionError):
        return transport_error("OpenAI-compatible server", ConnectionError(str(type(exc.__cause__).__name__)))
    return transport_error("OpenAI-compatible server", exc)
