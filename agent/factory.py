"""Builds the agent and its generator chain from settings; heavy libraries load only when a tier first runs.

The service and the answer evaluation build the agent here, so that what is measured is what visitors get.
"""

from __future__ import annotations

import dataclasses

from agent.agent import Agent, CuratedAnswers, Replies
from agent.chain import GeneratorChain, Tier
from agent.circuit import CircuitBreaker
from agent.generators.base import GenerationParams
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.gemini import GeminiGenerator
from agent.generators.local import LocalGenerator
from agent.generators.openai_compat import OpenAICompatGenerator
from agent.grounding import GroundingGuard
from agent.prompting import ContextBudget
from agent.retry import RetryPolicy
from agent.scrub import SecretScrubber
from agent.settings import AgentSettings
from agent.smalltalk import SmallTalkReplies
from rag.relevance import RelevanceCheck
from rag.retriever import Retriever


def build_agent(
    settings: AgentSettings,
    retriever: Retriever,
    secrets: tuple[str, ...] = (),
    curated: CuratedAnswers | None = None,
    contact_form: bool = False,
) -> Agent:
    """`secrets`: values never to appear in an answer (API keys, the admin token); `curated`: the owner's
    own answers, tried first; `contact_form`: visitors can leave their details (POST /leads), so one asking
    for a person is pointed to the form rather than to CONTACT_HINT."""
    replies = Replies(
        contact_hint=settings.contact_hint,
        no_answer=settings.no_answer_text,
        small_talk=SmallTalkReplies(identity=settings.assistant_intro) if settings.small_talk else None,
    )
    if not contact_form:
        handoff = f"I can't put you through to a person from this chat. {settings.contact_hint}"
        replies = dataclasses.replace(replies, handoff=handoff)
    return Agent(
        retriever,
        build_chain(settings),
        replies,
        relevance_floor=settings.relevance_floor,
        relevance=RelevanceCheck(settings.relevance_unrelated_rate, settings.relevance_foreign_quantile)
        if settings.relevance_check
        else None,
        max_answer_chars=settings.max_answer_chars,
        scrubber=SecretScrubber(secrets),
        curated=curated,
    )


def build_chain(settings: AgentSettings) -> GeneratorChain:
    params = GenerationParams(
        max_tokens=settings.chat_max_tokens,
        temperature=settings.chat_temperature,
        top_p=settings.chat_top_p,
        top_k=settings.chat_top_k,
        repetition_penalty=settings.chat_repetition_penalty,
    )

    def remote_policy() -> tuple[RetryPolicy, CircuitBreaker]:
        return (
            RetryPolicy(settings.max_retries, settings.retry_delay, settings.retry_after_max),
            CircuitBreaker(settings.circuit_breaker_failures, settings.circuit_breaker_seconds),
        )

    tiers: list[Tier] = []
    for name in settings.llm_chain:
        if name == "gemini":
            retry, breaker = remote_policy()
            key = settings.google_api_key.get_secret_value() if settings.google_api_key else None
            gemini = GeminiGenerator(
                key, settings.gemini_model, base_url=settings.gemini_base_url, params=params
            )
            tiers.append(Tier(gemini, settings.gemini_timeout, retry, breaker))
        elif name == "openai":
            retry, breaker = remote_policy()
            key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
            openai = OpenAICompatGenerator(
                settings.openai_base_url, settings.openai_model, api_key=key, params=params
            )
            tiers.append(Tier(openai, settings.openai_timeout, retry, breaker))
        elif name == "local":
            local = LocalGenerator(
                settings.local_model_name,
                models_dir=settings.models_dir,
                params=params,
                idle_seconds=settings.local_model_idle_seconds,
                memory_reserve_mb=settings.local_memory_reserve_mb,
                backend=settings.local_backend,
                context=ContextBudget(settings.local_context_chars, settings.local_context_passages),
                context_window=settings.local_context_window,
                threads=settings.local_threads,
            )
            tiers.append(
                Tier(local, settings.local_timeout, hold=True, evidence=settings.local_evidence_sentences)
            )
        else:
            # Its sentences are copied from the passages: nothing to check, and nothing after it to fall to.
            extractive = ExtractiveGenerator(settings.extractive_sentences)
            tiers.append(Tier(extractive, 5.0, last_resort=True, checked=False))
    guard = GroundingGuard(settings.grounding, trusted=(settings.contact_hint,))
    return GeneratorChain(tiers, deadline=settings.answer_deadline, guard=guard)
