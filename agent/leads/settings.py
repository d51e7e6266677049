"""Where visitors' contact requests go, read from the environment (or `.env`)."""

from __future__ import annotations

from typing import Self
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A shorter secret could be guessed by whoever wants to forge leads into the owner's systems.
WEBHOOK_SECRET_MIN = 16
SMTP_SCHEMES = ("smtp", "smtps", "smtp+starttls")


class LeadSettings(BaseSettings):
    # A blank variable means the default: docker-compose passes `KEY: ${KEY:-}` through as "".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    lead_webhook_url: str | None = Field(
        default=None,
        description="Each contact request is POSTed here as JSON, signed in X-Signature-SHA256.",
    )
    lead_webhook_secret: SecretStr | None = Field(
        default=None,
        description=f"Key of the webhook's HMAC-SHA256 signature (at least {WEBHOOK_SECRET_MIN} characters); "
        "required with LEAD_WEBHOOK_URL.",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="Mail server for contact requests: smtp://, smtp+starttls:// or smtps://"
        "[user:password@]host[:port].",
    )
    lead_email_to: str = Field(
        default="", description="Comma-separated addresses that get each contact request (with SMTP_URL)."
    )
    lead_email_from: str = Field(
        default="chatbot@localhost", description="Sender address of the contact request e-mails."
    )
    lead_delivery_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds one delivery attempt may take."
    )
    lead_retry_seconds: float = Field(
        default=5.0, gt=0, description="Wait before the first retry of a failed delivery; doubles each time."
    )
    lead_retry_max_seconds: float = Field(
        default=900.0, gt=0, description="Longest wait between two delivery attempts."
    )
    lead_give_up_hours: float = Field(
        default=72.0,
        gt=0,
        description="A delivery still failing this long after the request is marked failed (retry it from "
        "/admin).",
    )
    lead_retention_days: int = Field(
        default=365, ge=1, description="Days contact requests are kept; older ones are purged daily."
    )

    @field_validator("lead_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("LEAD_WEBHOOK_URL must be an http:// or https:// URL")
        return value.strip()

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value().strip())
        if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
            # The value itself is not repeated: it may hold a password.
            raise ValueError(
                "SMTP_URL must be smtp://, smtp+starttls:// or smtps://[user:password@]host[:port]"
            )
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        secret = self.lead_webhook_secret
        if self.lead_webhook_url and (secret is None or len(secret.get_secret_value()) < WEBHOOK_SECRET_MIN):
            raise ValueError(
                f"LEAD_WEBHOOK_URL needs LEAD_WEBHOOK_SECRET of at least {WEBHOOK_SECRET_MIN} characters "
                "(try `openssl rand -hex 32`): receivers check the signature"
            )
        if bool(self.smtp_url) != bool(self.email_to()):
            raise ValueError("SMTP_URL and LEAD_EMAIL_TO go together: set both to e-mail contact requests")
        return self

    def email_to(self) -> list[str]:
        return [address.strip() for address in self.lead_email_to.split(",") if address.strip()]

    def secrets(self) -> list[str]:
        """Values that must never appear in a log line."""
        values = []
        if self.lead_webhook_secret is not None:
            values.append(self.lead_webhook_secret.get_secret_value())
        if self.smtp_url is not None and (password := urlsplit(self.smtp_url.get_secret_value()).password):
            values.extend({password, unquote(password)})  # as written, and as sent to the server
        return values
