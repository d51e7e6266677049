"""Settings of the answering layer, read from the environment (or `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.smalltalk import DEFAULT_INTRO
from rag.settings import DEFAULT_FOREIGN_QUANTILE, DEFAULT_UNRELATED_RATE

TIERS = ("gemini", "openai", "local", "extractive")
DEFAULT_LOCAL_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
MINIMAL_LOCAL_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class AgentSettings(BaseSettings):
    # A blank variable means the default: docker-compose passes `KEY: ${KEY:-}` through as "".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    llm_chain: Annotated[list[str], NoDecode] = Field(
        default=list(TIERS), description="Tiers in the order they are tried; extractive is always last."
    )
    answer_deadline: float = Field(default=40.0, gt=1, description="Seconds a visitor waits at most.")

    google_api_key: SecretStr | None = Field(default=None, description="Enables the Gemini tier.")
    gemini_model: str = Field(default="gemini-3.8-flash")
    gemini_base_url: str | None = Field(default=None, description="Proxy or test server for the Gemini API.")
    gemini_timeout: float = Field(default=15.0, gt=0, description="Seconds per Gemini call.")

    openai_base_url: str | None = Field(default=None, description="OpenAI-compatible server, ending in /v1.")
    openai_model: str | None = Field(default=None, description="Model name the server knows.")
    openai_api_key: SecretStr | None = Field(default=None, description="Only if the server asks for one.")
    openai_timeout: float = Field(default=20.0, gt=0, description="Seconds per OpenAI-compatible call.")

    max_retries: int = Field(default=3, ge=0, le=10, description="Retries of a transient remote failure.")
    retry_delay: float = Field(default=1.0, ge=0, description="Backoff base: delay x 2^attempt seconds.")
    retry_after_max: float = Field(default=10.0, ge=0, description="Longest Retry-After honoured, seconds.")
    circuit_breaker_failures: int = Field(default=5, ge=1, description="Consecutive failures that open it.")
    circuit_breaker_seconds: float = Field(default=30.0, gt=0, description="How long an open circuit skips.")

    fallback_model_name: str | None = Field(
        default=None,
        description="Local model: a hub id (in MODELS_DIR or the HF cache), a folder, a .gguf file (or a "
        "folder holding one), or owner/repo/file.gguf as download-models fetched it.",
    )
    minimal_resources: bool = Field(default=False, description="Pick a much smaller default local model.")
    models_dir: Path = Field(default=Path("models"), description="Where download-models puts local models.")
    local_timeout: float = Field(default=30.0, gt=0, description="Seconds per local generation.")
    local_model_preload: bool = Field(default=False, description="Load the local model in the background.")
    local_model_idle_seconds: float = Field(default=900.0, ge=0, description="Unload after; 0 = never.")
    local_memory_reserve_mb: int = Field(default=256, ge=0, description="Memory left free when loading.")
    local_backend: Literal["auto", "llama_cpp", "transformers"] = Field(
        default="auto",
        description="Runtime of the local model; auto: llama.cpp for a .gguf file when llama-cpp-python is "
        "installed, transformers otherwise (it reads .gguf files too, dequantized: slower, more memory).",
    )
    local_context_chars: int = Field(
        default=1000,
        ge=200,
        le=100_000,
        description="Characters of retrieved passages the local model is shown: small models answer better "
        "from a short prompt, and each token of it costs time on a CPU.",
    )
    local_context_passages: int = Field(
        default=2, ge=1, le=20, description="Passages the local model is shown at most (the most relevant)."
    )
    local_evidence_sentences: int = Field(
        default=4,
        ge=0,
        le=50,
        description="Sentences of the passages the local model is shown: those that bear on the question, "
        "as the extractive answer would choose them; its answer may only rephrase them. 0: whole passages.",
    )
    local_context_window: int = Field(
        default=2048, ge=256, le=131_072, description="Tokens of context llama.cpp allocates (its KV cache)."
    )
    local_threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="CPU threads of the local model; 0 = half the usable cores for llama.cpp (its threads "
        "spin-wait: as many as cores stall on a busy machine), torch's default for transformers.",
    )

    grounding: Literal["strict", "off"] = Field(
        default="strict",
        description="strict: a model's sentence stating a fact (price, number, date, contact, name) that its "
        "sources do not is never shown; off: only prompt markup is removed.",
    )
    chat_max_tokens: int = Field(default=512, ge=16, le=8192, description="Longest answer, in tokens.")
    chat_temperature: float = Field(default=0.3, ge=0, le=2)
    chat_top_p: float = Field(default=0.95, gt=0, le=1)
    chat_top_k: int = Field(default=40, ge=1)
    chat_repetition_penalty: float = Field(default=1.1, gt=0)
    extractive_sentences: int = Field(
        default=4,
        ge=1,
        le=10,
        description="Sentences in an extractive answer (a list it opens with: up to 8 items).",
    )

    history_turns: int = Field(default=6, ge=0, le=50, description="Turns of a conversation kept; 0 = none.")
    history_ttl: float = Field(
        default=1800.0, gt=0, description="Seconds a conversation is kept after its last turn."
    )

    contact_hint: str = Field(
        default="Please contact our support team directly and we will be glad to help.",
        description="Contact details, shown when no answer can be given or nothing relevant is known.",
    )
    no_answer_text: str = Field(
        default="Sorry, I couldn't find anything about that in our information.",
        description="Said (followed by CONTACT_HINT) when nothing in the knowledge is about the question.",
    )
    relevance_floor: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="A hard minimum: passages scoring below this are never used, and with none left the "
        "agent says it does not know. With RELEVANCE_CHECK off it alone decides (the old fixed floor: 0.15).",
    )
    relevance_check: bool = Field(
        default=True,
        description="Decide per question, calibrated on the knowledge itself, whether what retrieval found "
        "is about the question at all; if not, the agent says it does not know.",
    )
    relevance_unrelated_rate: float = Field(
        default=DEFAULT_UNRELATED_RATE,
        gt=0,
        lt=1,
        description="Share of unrelated questions the calibrated check lets past its similarity bar on "
        "similarity alone: lower is stricter.",
    )
    relevance_foreign_quantile: float = Field(
        default=DEFAULT_FOREIGN_QUANTILE,
        ge=0,
        le=1,
        description="How similar to the knowledge a question made only of words it never uses must be: this "
        "quantile of its own sentences' similarity (0.5: their median). Lower answers more paraphrased "
        "questions, and more near-topic ones it cannot answer.",
    )
    max_answer_chars: int = Field(
        default=4000, ge=100, le=100_000, description="Longest answer given; a longer one is cut at a word."
    )
    small_talk: bool = Field(
        default=True, description="Answer greetings, thanks and 'who are you?' directly."
    )
    assistant_intro: str = Field(
        default=DEFAULT_INTRO,
        description="The reply to 'who are you?' and 'what can you do?'.",
    )

    @property
    def local_model_name(self) -> str:
        if self.fallback_model_name:
            return self.fallback_model_name
        return MINIMAL_LOCAL_MODEL if self.minimal_resources else DEFAULT_LOCAL_MODEL

    @field_validator("llm_chain", mode="before")
    @classmethod
    def _parse_chain(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            return value
        unknown = [t for t in value if t not in TIERS]
        if unknown:
            raise ValueError(f"unknown tier(s) {unknown}; choose from {', '.join(TIERS)}")
        if len(set(value)) != len(value):
            raise ValueError("a tier may appear only once")
        if "extractive" in value and value[-1] != "extractive":
            raise ValueError("extractive is the last resort: it must come last")
        return [*value, "extractive"] if "extractive" not in value else value
