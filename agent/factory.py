"""Builds the generator chain from settings; heavy libraries load only when a tier first runs."""

from __future__ import annotations

from agent.chain import GeneratorChain, Tier
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.gemini import GeminiGenerator
from agent.generators.local import LocalGenerator
from agent.retry import RetryPolicy
from agent.settings import AgentSettings


def build_chain(settings: AgentSettings) -> GeneratorChain:
    key = settings.google_api_key.get_secret_value() if settings.google_api_key else None
    tiers = [
        Tier(
            GeminiGenerator(
                key,
                settings.gemini_model,
                base_url=settings.gemini_base_url,
                timeout=settings.gemini_timeout,
                max_tokens=settings.chat_max_tokens,
                temperature=settings.chat_temperature,
            ),
            retry=RetryPolicy(settings.max_retries, settings.retry_delay),
        )
    ]
    if settings.local_model_enabled:
        tiers.append(
            Tier(
                LocalGenerator(
                    settings.fallback_model_name,
                    max_tokens=settings.chat_max_tokens,
                    temperature=settings.chat_temperature,
                )
            )
        )
    tiers.append(Tier(ExtractiveGenerator(settings.extractive_sentences)))
    return GeneratorChain(tiers)
