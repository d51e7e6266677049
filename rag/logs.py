"""structlog set-up, shared by the server and the command line (the lowest layer owns it)."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, Literal

import orjson
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
        if "@" in text:
            text = _EMAIL.sub("[email]", text)
        return _PHONE.sub("[phone]", text)


class _StderrLogger:
    """structlog's final logger: one write per line to whatever `sys.stderr` is at that moment.

    The service's own lines skip the standard library's records and handlers (most of a log line's cost on a
    cached answer); libraries' records still come through `logging`, rendered by the same processors."""

    __slots__ = ("name",)
    _lock = threading.Lock()

    def __init__(self, name: str = "") -> None:
        self.name = name  # for add_logger_name

    def msg(self, message: str) -> None:
        with self._lock:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _logger_factory(*args: Any) -> _StderrLogger:
    return _StderrLogger(str(args[0]) if args else "")


def _dumps(event: Any, default: Any = None, **_: Any) -> str:
    return orjson.dumps(event, default=default).decode()


def configure_logging(settings: LoggingSettings, secrets: tuple[str, ...] = ()) -> None:
    """Route structlog and the standard library (uvicorn, chromadb, ...) through one renderer.

    Called once per process by the entry points; calling it again replaces the configuration. `secrets`
    (API keys, the admin token) are removed from every line, whatever carried them there.
    """
    redactor = Redactor(secrets)
    stamps: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    exceptions: list[structlog.types.Processor] = []
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        exceptions.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [structlog.contextvars.merge_contextvars, *stamps, *exceptions]
    # The service's own lines are masked before the level, logger name and timestamp are added (fixed
    # formats that can hold nothing to mask), and after an exception has become text.
    own: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        *exceptions,
        redactor,
        *stamps,
        renderer,
    ]

    structlog.configure(
        processors=own,
        logger_factory=_logger_factory,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(settings.log_level)),
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
