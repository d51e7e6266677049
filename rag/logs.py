"""structlog set-up, shared by the server and the command line (the lowest layer owns it)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["console", "json"]


class LoggingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    log_format: LogFormat = Field(default="console", description="json in production, console for dev")
    log_messages: bool = Field(
        default=False, description="Log visitors' messages (e-mail addresses and phone numbers masked)."
    )


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Seven or more digits, in the groupings people type them: +44 117 496 0738, (0117) 496-0738, 07700900123.
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d(?:[\s().-]{0,2}\d){6,}(?![\w.])")


class Redactor:
    """A structlog processor: masks e-mail addresses and phone numbers, and removes the given secrets, in
    every string of every log line (the message, its fields, an exception's text)."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.clean(value)
        return event

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


def configure_logging(settings: LoggingSettings, secrets: tuple[str, ...] = ()) -> None:
    """Route structlog and the standard library (uvicorn, chromadb, ...) through one renderer.

    Called once per process by the entry points; calling it again replaces the configuration. `secrets`
    (API keys, the admin token) are removed from every line, whatever carried them there.
    """
    redactor = Redactor(secrets)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redactor, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level)
    # Libraries that are chatty at INFO: their detail is rarely what an operator needs.
    noisy_libraries = (
        "httpx",
        "httpx2",
        "httpcore",
        "chromadb",
        "sentence_transformers",
        "urllib3",
        "google_genai",
    )
    for noisy in noisy_libraries:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
