"""structlog set-up, shared by the server and the command line (the lowest layer owns it)."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, Literal

import orjson
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["console", "json"]


class LoggingSettings(BaseSettings):
    # A blank variable means the default: docker-compose passes `KEY: ${KEY:-}` through as "".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    log_format: LogFormat = Field(default="console", description="json in production, console for dev")
    log_messages: bool = Field(
        default=False, description="Log visitors' messages (e-mail addresses and phone numbers masked)."
    )


# A log line carries outside text (a visitor's message, a URL's query), so both masks run in linear time.
# As single regexes they were quadratic: re.sub retries from every character, and each try rescanned the
# same run (`a` * 60,000 + `@` in a query held the event loop for 8.8 s; a list `1. 2. 3. ...` of 20,000
# characters took 5 s). The regexes left read each run once: `_DOMAIN` only right after an `@`, and
# `_DIGIT_RUN` from a run's first digit, where it cannot fail.
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")  # what follows an e-mail address's `@`
# A run of digits at most two separators apart: where a phone number can be, read in one pass.
_DIGIT_RUN = re.compile(r"\d(?:[\s().-]{0,2}\d)*")
_PHONE_DIGITS = 7  # seven or more, in the groupings people type them: +44 117 496 0738, (0117) 496-0738


class Redactor:
    """A structlog processor: masks e-mail addresses and phone numbers, and removes the given secrets, in
    every string of every log line (the message, its fields, an exception's text)."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str | dict | list | tuple):
                event[key] = self._nested(value)
        return event

    def _nested(self, value: Any) -> Any:
        """Strings inside lists and mappings (a validation error's details, a header list) too."""
        if isinstance(value, str):
            return self.clean(value)
        if isinstance(value, dict):
            return {key: self._nested(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._nested(item) for item in value]
        return value

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        if "@" in text:
            text = mask_emails(text)
        return mask_phones(text)


def mask_emails(text: str) -> str:
    r"""`re.sub(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "[email]", text)`, in linear time: the address's start is
    read leftwards from its `@` (never past the `@` before), its domain rightwards, once."""
    parts: list[str] = []
    done = 0  # where the text not yet in `parts` starts
    at = text.find("@")
    while at != -1:
        start = at
        while start > done and _in_local_part(text[start - 1]):
            start -= 1
        domain = _DOMAIN.match(text, at + 1) if start < at else None
        if domain is None:
            at = text.find("@", at + 1)
            continue
        parts += (text[done:start], "[email]")
        done = domain.end()
        at = text.find("@", done)
    parts.append(text[done:])
    return "".join(parts)


def mask_phones(text: str) -> str:
    r"""`re.sub(r"(?<![\w.])\+?\(?\d(?:[\s().-]{0,2}\d){6,}(?![\w.])", "[phone]", text)`, in linear time.

    Within one run of digits every start ends at the same place: the last digit followed by neither a word
    character nor a dot. So each run is read once, and masked from its first digit that may start a number
    (with its `+` and `(`) when at least seven digits lie between."""
    parts: list[str] = []
    done = 0
    for run in _DIGIT_RUN.finditer(text):
        if run.end() - run.start() < _PHONE_DIGITS:
            continue
        digits = [i for i in range(run.start(), run.end()) if text[i].isdecimal()]
        last = next(
            (k for k in range(len(digits) - 1, _PHONE_DIGITS - 2, -1) if not _joins(text, digits[k] + 1)),
            None,
        )
        if last is None:
            continue
        for first in range(last - _PHONE_DIGITS + 2):
            start = _number_start(text, digits[first], done)
            if start is not None:
                parts += (text[done:start], "[phone]")
                done = digits[last] + 1
                break
    parts.append(text[done:])
    return "".join(parts)


def _in_local_part(char: str) -> bool:
    return char.isalnum() or char in "_.+-"  # `[\w.+-]`: str.isalnum() is what `\w` means, less `_`


def _joins(text: str, index: int) -> bool:
    r"""Whether the character at `index` continues a word or a number (`[\w.]`): no number ends there."""
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] in "_.")


def _number_start(text: str, digit: int, done: int) -> int | None:
    """Where a number whose first digit is at `digit` starts (`+`, `(`, `+(` or the digit), if it can."""
    for start in (digit - 2, digit - 1, digit):
        if start >= done and text[start:digit] in ("+(", "+", "(", "") and not _joins(text, start - 1):
            return start
    return None


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
    # Exceptions become plain text before the redactor sees the line, in either format: a traceback is
    # masked like any other field, and never shows local variables (rich's pretty tracebacks print every
    # frame's locals: request headers with the admin token, a visitor's unmasked message).
    exceptions: list[structlog.types.Processor] = [structlog.processors.format_exc_info]
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
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
        "alembic",  # each migration step; records_migrated says what changed
    )
    for noisy in noisy_libraries:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # A crash, or a thread's, would otherwise print its traceback to stderr past the redactor.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_failure


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    structlog.get_logger(__name__).critical("uncaught_exception", exc_info=(kind, exc, tb))


def _log_thread_failure(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    structlog.get_logger(__name__).error(
        "thread_failed",
        thread=args.thread.name if args.thread else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
