"""Hostile visitors against the real app: no input gives a 500, a bypassed cache is never written, wrong
admin tokens run out, and no log line holds a secret or an unmasked contact detail, exceptions included."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import structlog
from pydantic import ValidationError

from agent.prompting import SYSTEM_INSTRUCTIONS
from agent.scrub import LeakGuard
from api.settings import ApiSettings
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from rag.logs import LoggingSettings, configure_logging
from tests.conftest import NO_ENV_FILE, AppFactory
from tests.test_security import TOKEN, as_visitor

QUESTION = "What services do you offer?"
SECRET_TOKEN = "tok-Admin-9f8e7d6c5b4a3210"
EMAIL = "jane.doe@example.org"
PHONE = "+44 117 496 0738"


def test_a_request_that_bypasses_the_cache_never_writes_it(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    fake_gemini.reset(
        Reply(text="We build websites."),
        Reply(text="a sampling model should never have said this."),
        Reply(text="it streamed, and just as bad."),
    )
    client = make_client(agent={"google_api_key": "k-123", "gemini_base_url": fake_gemini.url})

    first = client.post("/chat", json={"message": QUESTION}).json()
    assert first["response"] == "We build websites." and first["cached"] is False
    bypass = client.post("/chat", json={"message": QUESTION, "use_cache": False}).json()
    assert bypass["response"].startswith("a sampling model") and bypass["cached"] is False
    streamed = client.post("/chat/stream", json={"message": QUESTION, "use_cache": False}).text
    assert "it streamed" in streamed

    again = client.post("/chat", json={"message": QUESTION}).json()
    assert again["cached"] is True and again["response"] == "We build websites."
    assert client.get("/cache/stats").json()["valid_entries"] == 1


def test_a_bypass_with_nothing_cached_leaves_nothing_cached(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    fake_gemini.reset(default=Reply(text="We build websites."))
    client = make_client(agent={"google_api_key": "k-123", "gemini_base_url": fake_gemini.url})
    assert client.post("/chat", json={"message": QUESTION, "use_cache": False}).json()["cached"] is False
    assert client.post("/chat", json={"message": QUESTION}).json()["cached"] is False


# As JSON escapes them: halves of UTF-16 pairs, no characters at all.
SURROGATE_BODIES = [
    r'{"message": "hi \ud800 there"}',
    r'{"message": "hi", "session_id": "\ud800"}',
    r'{"messages": [{"role": "user", "content": "hi \ud800"}]}',
    r'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]}',
    r'{"messages": [{"role": "user", "content": "hi", "name": "\ud800"}]}',
    r'{"messages": [{"role": "user", "content": "hi"}], "user": "\udc00"}',
    r'{"messages": [{"role": "\ud800", "content": "hi"}]}',
    r'{"\ud800": 1, "message": "hi"}',
]


@pytest.mark.parametrize("path", ["/chat", "/chat/stream", "/v1/chat/completions"])
def test_lone_surrogates_are_invalid_input_everywhere(make_client: AppFactory, path: str) -> None:
    client = make_client()
    for body in SURROGATE_BODIES:
        reply = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
        assert reply.status_code == 422, (body, reply.status_code, reply.text)


def test_deeply_nested_or_odd_bodies_never_give_500(make_client: AppFactory) -> None:
    client = make_client()
    bodies = [
        b"[" * 30_000 + b"]" * 30_000,
        b'{"messages": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        b'{"message": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}",
        b'{"message": "\\u0000\\u200b\\u202e"}',
        b'{"message": 1e999}',
        b'{"message": "x", "message": "y"}',
        b"\xff\xfe\x00",
    ]
    for path in ("/chat", "/chat/stream", "/v1/chat/completions"):
        for body in bodies:
            reply = client.post(path, content=body, headers={"content-type": "application/json"})
            assert reply.status_code < 500, (path, body[:40], reply.status_code)


def test_wrong_admin_tokens_run_out_per_address(make_client: AppFactory) -> None:
    client = make_client(api={"admin_token": TOKEN, "rate_limit_admin_failures": "5/minute"})
    guesser = as_visitor(client, "203.0.113.7")
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    assert [guesser.get("/cache/stats", headers=wrong).status_code for _ in range(5)] == [403] * 5
    refused = guesser.get("/admin/knowledge", headers=wrong)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "Too many wrong admin tokens" in refused.json()["error"]
    # Once past the budget, even the right token from that address waits: guessing gets nowhere.
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert guesser.get("/cache/stats", headers=right).status_code == 429
    # The operator elsewhere is not locked out, and a missing header is not a guess.
    operator = as_visitor(client, "198.51.100.5")
    assert operator.get("/cache/stats", headers=right).status_code == 200
    assert [operator.get("/cache/stats").status_code for _ in range(8)] == [401] * 8
    assert operator.get("/cache/stats", headers=right).status_code == 200


def test_an_admin_token_must_be_long_enough() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        ApiSettings(**NO_ENV_FILE, admin_token="short-token")
    assert ApiSettings(**NO_ENV_FILE, admin_token="x" * 16).admin_token is not None


def test_a_blank_admin_token_in_the_environment_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "")  # as compose passes ${ADMIN_TOKEN:-}
    assert ApiSettings(**NO_ENV_FILE).admin_token is None


def test_zero_width_characters_do_not_hide_repeated_instructions() -> None:
    guard = LeakGuard(SYSTEM_INSTRUCTIONS)
    words = SYSTEM_INSTRUCTIONS.split("\n")[0].split(" ")
    for invisible in ("\u200b", "\u200d", "\u00ad", "\u2060", "\ufeff"):
        hidden = " ".join(word[:2] + invisible + word[2:] for word in words)
        assert guard.leaks(f"Sure: {hidden}"), repr(invisible)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in " ".join(words))
    assert guard.leaks(fullwidth)
    assert not guard.leaks("We build websites, apps and online shops for small companies.")


class Secretive(Exception):
    pass


def fail_with_secrets_in_scope() -> None:
    authorization = f"Bearer {SECRET_TOKEN}"  # a local variable, as a request's headers are
    visitor = f"write to {EMAIL} or call {PHONE}"
    raise Secretive(f"failed for {authorization}: {visitor}")


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_no_log_line_holds_a_secret_or_a_contact_detail(
    capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    settings = LoggingSettings(**NO_ENV_FILE, log_format=log_format)
    configure_logging(settings, secrets=(SECRET_TOKEN,))
    try:
        log = structlog.get_logger("test")
        try:
            fail_with_secrets_in_scope()
        except Secretive as exc:
            log.exception("own_line_with_traceback", detail={"headers": [("authorization", SECRET_TOKEN)]})
            log.error("unhandled_error", path="/v1/chat/completions", exc_info=exc)  # as api.errors logs
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        log.info("plain_line", message=f"mail {EMAIL}, phone {PHONE}, token {SECRET_TOKEN}")
        worker = threading.Thread(target=fail_with_secrets_in_scope, name="doomed")
        worker.start()
        worker.join()
        output = capsys.readouterr().err
    finally:
        configure_logging(LoggingSettings(**NO_ENV_FILE))
    assert "own_line_with_traceback" in output and "Exception in ASGI application" in output
    assert "thread_failed" in output and output.count("Traceback") >= 4  # the tracebacks are there...
    assert "fail_with_secrets_in_scope" in output
    for leaked in (SECRET_TOKEN, EMAIL, PHONE, "jane.doe"):  # ...with nothing to hide in them
        assert leaked not in output, leaked
    assert "[redacted]" in output and "[email]" in output and "[phone]" in output
    if log_format == "json":
        for line in output.splitlines():
            if line.startswith("{"):
                json.loads(line)
