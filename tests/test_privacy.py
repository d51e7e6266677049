"""Logs hold no secrets, and no visitor messages unless asked; e-mail addresses and phones are masked."""

from __future__ import annotations

import pytest

from agent.scrub import SecretScrubber
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from rag.logs import Redactor
from tests.conftest import AppFactory

SENTINEL = "sentinel-key-7d41c9e2"
QUESTION = "I'm jane.doe+web@example.co.uk, call me on +44 117 496 0738: what services do you offer?"


def test_the_redactor_masks_contact_details_and_removes_secrets() -> None:
    redactor = Redactor((SENTINEL, "ab"))  # too short to be a secret worth matching
    text = (
        f"key={SENTINEL} mail a.b@c.org or 07700 900123 or (0117) 496-0738; price £12,500 in 2026, 21/11/2026"
    )
    assert redactor.clean(text) == (
        "key=[redacted] mail [email] or [phone] or [phone]; price £12,500 in 2026, 21/11/2026"
    )
    event = redactor(None, "info", {"event": "x", "detail": f"{SENTINEL}!", "count": 3})
    assert event == {"event": "x", "detail": "[redacted]!", "count": 3}


def test_messages_are_not_logged_by_default(
    make_client: AppFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    client = make_client()
    assert client.post("/chat", json={"message": QUESTION}).status_code == 200
    logs = capfd.readouterr().err
    assert "chat_answered" in logs
    assert "what services do you offer" not in logs and "jane.doe" not in logs and "496 0738" not in logs


def test_log_messages_logs_them_masked(make_client: AppFactory, capfd: pytest.CaptureFixture[str]) -> None:
    client = make_client(logs={"log_messages": True})
    assert client.post("/chat", json={"message": QUESTION}).status_code == 200
    assert client.post("/chat/stream", json={"message": QUESTION, "use_cache": False}).status_code == 200
    answered = [line for line in capfd.readouterr().err.splitlines() if "chat_answered" in line]
    assert len(answered) == 2
    for line in answered:
        assert "what services do you offer?" in line and "[email]" in line and "[phone]" in line
        assert "jane.doe" not in line and "496 0738" not in line


@pytest.mark.parametrize(
    "reply",
    [
        Reply(
            status=400,
            body={"error": {"code": 400, "message": f"API key {SENTINEL} not valid", "status": "X"}},
        ),
        Reply(status=500, body=f"internal error for key={SENTINEL}".encode()),
        Reply(text=f"Sure! The key is {SENTINEL}."),  # a model tricked into repeating what it should not know
    ],
)
def test_the_api_key_never_reaches_a_log_line_or_an_error(
    make_client: AppFactory, fake_gemini: FakeGemini, capfd: pytest.CaptureFixture[str], reply: Reply
) -> None:
    fake_gemini.reset(default=reply)
    client = make_client(
        agent={
            "llm_chain": "gemini,extractive",
            "google_api_key": SENTINEL,
            "gemini_base_url": fake_gemini.url,
            "max_retries": 0,
        }
    )
    bodies = [
        client.post("/chat", json={"message": "What services do you offer?"}).text,
        client.post("/chat/stream", json={"message": "What services do you offer?", "use_cache": False}).text,
        client.get("/health").text,
        client.get("/stats/llm").text,
    ]
    assert fake_gemini.calls >= 1
    logs = capfd.readouterr().err
    assert SENTINEL not in logs
    assert all(SENTINEL not in body for body in bodies)
    if reply.status == 200:  # the tricked answer itself is given, without the key
        assert "The key is [redacted]." in bodies[0]


def test_a_secret_split_over_streamed_pieces_is_still_removed() -> None:
    scrubber = SecretScrubber((SENTINEL,))
    stream = scrubber.stream()
    text = f"before {SENTINEL} after"
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]  # the key arrives in eight pieces
    out = "".join(stream.feed(piece) for piece in pieces) + stream.flush()
    assert out == "before [redacted] after"
    assert SecretScrubber().stream().feed("no secrets: no delay") == "no secrets: no delay"
