"""Gemini through the google-genai SDK (async client). SDK retries stay off: the chain owns retries."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from agent.errors import FallThroughError, GenerationError, RetryableError, TierUnavailable
from agent.generators.base import TierStatus
from agent.prompting import Prompt

log = structlog.get_logger(__name__)


class GeminiGenerator:
    provider = "gemini"

    def __init__(
        self,
        api_key: str | None,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float = 20.0,
        max_tokens: int = 512,
        temperature: float = 0.3,
    ) -> None:
        self.model = model
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._client: Any = None

    def status(self) -> TierStatus:
        if not self._api_key:
            return TierStatus("not configured", "GOOGLE_API_KEY is not set")
        return TierStatus("ready")

    def _get_client(self) -> Any:
        if self._client is None:
            from google import genai
            from google.genai import types

            options = types.HttpOptions(timeout=int(self._timeout * 1000))
            if self._base_url:
                options.base_url = self._base_url
            self._client = genai.Client(api_key=self._api_key, http_options=options)
        return self._client

    async def generate(self, prompt: Prompt) -> str:
        if not self._api_key:
            raise TierUnavailable("GOOGLE_API_KEY is not set")
        from google.genai import types

        config = types.GenerateContentConfig(
            system_instruction=prompt.system,
            max_output_tokens=self._max_tokens,
            temperature=self._temperature,
        )
        try:
            # The SDK timeout covers each HTTP exchange; this one also bounds DNS, TLS and body reads.
            async with asyncio.timeout(self._timeout + 1.0):
                response = await self._get_client().aio.models.generate_content(
                    model=self.model, contents=prompt.user_message(), config=config
                )
        except Exception as exc:  # classified right here, once, into our error tree
            raise classify(exc) from exc
        return _text_of(response)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None


def classify(exc: BaseException) -> GenerationError:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        code = int(exc.code or 0)
        if code == 429 or code >= 500:
            return RetryableError(f"Gemini answered HTTP {code}", status=code)
        return FallThroughError(f"Gemini refused the request: HTTP {code}", status=code)
    if isinstance(exc, TimeoutError):
        return RetryableError("Gemini timed out")
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return FallThroughError("Gemini sent a malformed reply")
    if isinstance(exc, ConnectionError | OSError) or _is_transport_error(exc):
        return RetryableError(f"Gemini connection failed: {type(exc).__name__}")
    return FallThroughError(f"Gemini call failed: {type(exc).__name__}")


def _is_transport_error(exc: BaseException) -> bool:
    """httpx and aiohttp both serve the SDK, depending on what is installed."""
    import httpx

    if isinstance(exc, httpx.TransportError):
        return True
    try:
        import aiohttp
    except ImportError:
        return False
    return isinstance(exc, aiohttp.ClientError)


def _text_of(response: Any) -> str:
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        raise FallThroughError(f"Gemini blocked the prompt: {feedback.block_reason}")
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        raise FallThroughError("Gemini returned no candidates")
    content = candidates[0].content
    parts = (content.parts or []) if content is not None else []
    text = "".join(getattr(p, "text", None) or "" for p in parts if not getattr(p, "thought", False))
    if not text.strip():
        reason = getattr(candidates[0], "finish_reason", None)
        raise FallThroughError(f"Gemini returned an empty answer (finish reason {reason})")
    return text.strip()
