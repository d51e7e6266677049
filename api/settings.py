"""The service's settings: each layer's own model, composed from one environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.leads.settings import LeadSettings
from agent.records.settings import RecordsSettings
from agent.settings import AgentSettings
from rag.logs import LoggingSettings
from rag.settings import RagSettings

# What MAX_MESSAGE_CHARS may be raised to (the request schema's own bound).
MESSAGE_CHARS_CEILING = 8000
# A shorter admin token could be guessed; `openssl rand -hex 24` gives 48 characters.
ADMIN_TOKEN_MIN = 16


class ApiSettings(BaseSettings):
    # A blank variable means the default: docker-compose passes `KEY: ${KEY:-}` through as "".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    host: str = Field(default="127.0.0.1")
    port: int = Field(default=8000, ge=1, le=65535)
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated proxy addresses or networks whose X-Forwarded-For is believed.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description=f"Bearer token for admin calls (at least {ADMIN_TOKEN_MIN} characters); unset: admin "
        "calls from loopback only.",
    )
    allowed_origins: str = Field(
        default="",
        description="Comma-separated origins of the pages that may embed the chatbot; empty allows any.",
    )
    starter_questions: list[str] = Field(
        default=[],
        description='Questions the widget offers in an empty conversation, a JSON array (["What are your '
        'prices?", "Do you ship abroad?"]); default empty: none. A page\'s data-starters wins.',
    )
    max_body_bytes: int = Field(
        default=65536, ge=1024, description="Largest request body accepted; larger gets 413."
    )
    max_message_chars: int = Field(
        default=2000, ge=1, le=MESSAGE_CHARS_CEILING, description="Longest visitor message accepted."
    )
    cache_ttl: int = Field(default=3600, ge=0, description="Seconds an answer stays cached; 0 disables.")
    cache_max_entries: int = Field(default=1000, ge=1)
    rate_limit_chat: str = Field(default="20/minute")
    rate_limit_root: str = Field(default="60/minute")
    rate_limit_cache_stats: str = Field(default="30/minute")
    rate_limit_stats: str = Field(default="30/minute")
    rate_limit_history: str = Field(default="60/minute")
    rate_limit_cache_clear: str = Field(default="5/minute")
    rate_limit_admin: str = Field(default="60/minute", description="Knowledge admin calls, per IP.")
    rate_limit_leads: str = Field(
        default="5/minute;20/day", description="Contact requests (POST /leads) per IP."
    )
    rate_limit_admin_failures: str = Field(
        default="10/minute", description="Wrong admin tokens per IP; past it, admin calls get 429."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the answer cache, rate-limit counters and conversations, shared by replicas.",
    )
    redis_prefix: str = Field(
        default="kbchat",
        pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="Prefix of this service's Redis keys.",
    )
    shutdown_grace: int = Field(
        default=30, ge=0, description="Seconds in-flight requests get to finish after SIGTERM."
    )
    max_header_bytes: int = Field(
        default=32768,
        ge=1024,
        description="Largest request head (request line and headers) accepted; larger gets 431 and a close.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection has to send a complete request head; then 408 and a close.",
    )
    access_log: bool = Field(
        default=False,
        description="A log line per HTTP request; chat answers are logged either way (chat_answered).",
    )
    ingest_on_start: bool = Field(default=True, description="Embed the knowledge folder at start if needed.")
    embedder_warmup: bool = Field(default=True, description="Load the embedding model in the background.")

    @field_validator(
        "rate_limit_chat",
        "rate_limit_root",
        "rate_limit_cache_stats",
        "rate_limit_cache_clear",
        "rate_limit_stats",
        "rate_limit_history",
        "rate_limit_admin",
        "rate_limit_admin_failures",
        "rate_limit_leads",
    )
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '20/minute': {value!r}") from exc
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < ADMIN_TOKEN_MIN:
            raise ValueError(
                f"ADMIN_TOKEN must have at least {ADMIN_TOKEN_MIN} characters (try `openssl rand -hex 24`)"
            )
        return value


@dataclass(frozen=True)
class Settings:
    api: ApiSettings = field(default_factory=ApiSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    rag: RagSettings = field(default_factory=RagSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    records: RecordsSettings = field(default_factory=RecordsSettings)
    leads: LeadSettings = field(default_factory=LeadSettings)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line."""
        keys = (self.agent.google_api_key, self.agent.openai_api_key, self.api.admin_token)
        values = [key.get_secret_value() for key in keys if key is not None]
        if (password := self.records.password()) is not None:
            values.append(password)
        values.extend(self.leads.secrets())
        return tuple(values)
