"""Gemini through the google-genai SDK (async client). SDK retries stay off: the chain owns retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog

from agent.errors import FallThroughError, GenerationError, TierUnavailable, http_error, transport_error
from agent.generators.base import GenerationParams, StreamingGenerator, TierStatus
from agent.generators.streaming import guarded
from agent.prompting import Prompt
from agent.retry import parse_retry_after

log = structlog.get_logger(__name__)


class GeminiGenerator(StreamingGenerator):
    provider = "gemini"

    def __init__(
        self,
        api_key: str | None,
        model: str,
        *,
        base_url: str | None = None,
        params: GenerationParams | None = None,
    ) -> None:
        self.model = model
        self._api_key = api_key
        self._base_url = base_url
        self._params = params or GenerationParams()
        self._client: Any = None

    def status(self) -> TierStatus:
        if not self._api_key:
            return TierStatus("not configured", "GOOGLE_API_KEY is not set")
        return TierStatus("ready")

    def warm_up(self) -> None:
        """Builds the SDK client. Importing the SDK takes about a second: the service does it in the
        background at start, so that neither a visitor's first question nor the event loop waits for it."""
        if self._client is None and self._api_key:
            from google import genai
            from google.genai import types

            # One attempt, explicitly: with no retry options the SDK quietly retries connection errors
            # after sleeping 1-10 s, under our own retries and past the visitor's deadline.
            options = types.HttpOptions(
                base_url=self._base_url, retry_options=types.HttpRetryOptions(attempts=1)
            )
            self._client = genai.Client(api_key=self._api_key, http_options=options)

    async def _ready(self) -> Any:
        if not self._api_key:
            raise TierUnavailable("GOOGLE_API_KEY is not set", reason="not_configured")
        if self._client is None:
            await asyncio.to_thread(self.warm_up)
        return self._client

    def _config(self, prompt: Prompt, timeout: float) -> Any:
        from google.genai import types  # imported by `warm_up` already

        return types.GenerateContentConfig(
            system_instruction=prompt.system,
            max_output_tokens=self._params.max_tokens,
            temperature=self._params.temperature,
            top_p=self._params.top_p,
            top_k=self._params.top_k,
            http_options=types.HttpOptions(timeout=max(1, int(timeout * 1000))),
        )

    def stream(self, prompt: Prompt, *, timeout: float) -> AsyncIterator[str]:
        return guarded(self._pieces(prompt, timeout), classify, "Gemini")

    async def _pieces(self, prompt: Prompt, timeout: float) -> AsyncIterator[str]:
        client = await self._ready()
        chunks = await client.aio.models.generate_content_stream(
            model=self.model, contents=prompt.user_message(), config=self._config(prompt, timeout)
        )
        first = True
        async for chunk in chunks:
            piece = _piece_of(chunk, first=first)
            first = first and not piece.strip()
            yield piece

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None


def classify(exc: BaseException) -> GenerationError:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        headers = getattr(exc.response, "headers", None)
        return http_error("Gemini", int(exc.code or 0), parse_retry_after(headers, exc.details))
    return transport_error("Gemini", exc)


def _piece_of(chunk: Any, *, first: bool) -> str:
    """The text of one streamed chunk; a block or an empty finish before any text is a fall-through."""
    feedback = getattr(chunk, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        raise FallThroughError(f"Gemini blocked the prompt: {feedback.block_reason}", reason="blocked")
    candidates = getattr(chunk, "candidates", None) or []
    if not candidates or candidates[0].content is None:
        return ""
    text = "".join(
        getattr(p, "text", None) or ""
        for p in candidates[0].content.parts or []
        if not getattr(p, "thought", False)
    )
    if first and not text.strip():
        finish = str(getattr(candidates[0], "finish_reason", "") or "")
        if "SAFETY" in finish or "BLOCK" in finish:
            raise FallThroughError(f"Gemini stopped the answer: {finish}", reason="blocked")
    return text
