"""Settings of the answering layer, read from the environment (or `.env`)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    google_api_key: SecretStr | None = Field(default=None, description="Enables the Gemini tier.")
    gemini_model: str = Field(default="gemini-3.8-flash")
    gemini_base_url: str | None = Field(default=None, description="Proxy or test server for the Gemini API.")
    gemini_timeout: float = Field(default=20.0, gt=0, description="Seconds per Gemini attempt.")
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries of a transient remote failure.")
    retry_delay: float = Field(default=1.0, ge=0, description="Backoff base: delay x 2^attempt seconds.")

    fallback_model_name: str = Field(
        default="Qwen/Qwen2.5-0.5B-Instruct",
        description="Local transformers model: a hub id already in the local cache, or a folder.",
    )
    local_model_enabled: bool = Field(default=True, description="Set false to skip the local tier.")

    chat_max_tokens: int = Field(default=512, ge=16, le=8192, description="Longest answer, in tokens.")
    chat_temperature: float = Field(default=0.3, ge=0, le=2)
    extractive_sentences: int = Field(
        default=4, ge=1, le=10, description="Sentences in an extractive answer."
    )

    contact_hint: str = Field(
        default="Please contact our support team directly and we will be glad to help.",
        description="Shown when no answer can be given at all.",
    )

    @field_validator("google_api_key", "gemini_base_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # docker-compose passes `KEY: ${KEY:-}` through as an empty string.
        return None if isinstance(value, str) and not value.strip() else value
