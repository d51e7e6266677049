"""Visitors' contact requests over the real app: validated and stored with the conversation so far, delivered
through the outbox to a real webhook receiver and a real SMTP server (aiosmtpd) on 127.0.0.1, signed, tried
again while the receiver is down and delivered once when it is back, kept across a SIGKILL, and shown to the
owner in /admin/leads."""

from __future__ import annotations

import email
import hashlib
import hmac
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi.testclient import TestClient
from pydantic import ValidationError

from agent.leads.outbox import NewLead, Outbox, Route
from agent.leads.settings import LeadSettings
from agent.records.database import create_records_engine, migrate
from agent.records.settings import RecordsSettings
from bench.server import ServerProcess, free_port
from tests.conftest import KNOWLEDGE, NO_ENV_FILE, AppFactory
from tests.servers.webhook import WebhookReceiver
from tests.test_streaming import sse

SECRET = "webhook-signing-secret-0123456789"
VISITOR = {
    "name": "Ada Lovelace",
    "email": "ada@example.org",
    "message": "Please call me about a new website.",
}


class MailSink:
    """aiosmtpd's handler: keeps every message the server accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((envelope, email.message_from_bytes(content)))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[Envelope, Message]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} e-mails in {timeout}s"
        return list(self.messages)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def mail() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


def webhook(receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    return {"lead_webhook_url": receiver.url, "lead_webhook_secret": SECRET, **extra}


def deliveries(client: TestClient) -> list[dict[str, Any]]:
    leads = client.get("/admin/leads").json()["leads"]
    return [delivery for lead in leads for delivery in lead["deliveries"]]


def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_lead_goes_signed_to_the_webhook_and_by_mail_with_the_conversation(
    make_client: AppFactory, receiver: WebhookReceiver, mail: tuple[MailSink, int]
) -> None:
    sink, port = mail
    client = make_client(
        leads=webhook(receiver, smtp_url=f"smtp://127.0.0.1:{port}", lead_email_to="sales@example.com")
    )
    asked = client.post("/chat", json={"message": "What services do you offer?", "session_id": "visitor-1"})
    assert asked.status_code == 200

    response = client.post("/leads", json={**VISITOR, "consent": True, "session_id": "visitor-1"})
    assert response.status_code == 201, response.text
    lead_id = response.json()["lead_id"]
    assert sorted(response.json()["delivery"]) == ["email", "webhook"]

    [call] = receiver.wait_for(1)
    expected = hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(call.headers["X-Signature-SHA256"], expected)
    assert call.headers["X-Lead-Id"] == lead_id
    assert call.path == "/hooks/leads?token=hook-secret-in-query"
    body = call.json()
    assert {k: body[k] for k in ("id", "name", "email", "message", "consent")} == {
        "id": lead_id,
        **VISITOR,
        "consent": True,
    }
    [turn] = body["conversation"]["turns"]
    assert turn["question"] == "What services do you offer?"
    assert turn["answer"] == asked.json()["response"]

    [(envelope, message)] = sink.wait_for(1)
    assert envelope.rcpt_tos == ["sales@example.com"]
    assert message["Reply-To"] == "Ada Lovelace <ada@example.org>"
    assert message["Subject"] == "Contact request from Ada Lovelace"
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert VISITOR["message"] in text and "Visitor: What services do you offer?" in text

    wait_until(lambda: all(d["status"] == "delivered" for d in deliveries(client)))
    [lead] = client.get("/admin/leads").json()["leads"]
    assert lead["id"] == lead_id and lead["name"] == "Ada Lovelace" and lead["conversation"]
    by_channel = {d["channel"]: d for d in lead["deliveries"]}
    assert by_channel["webhook"]["attempts"] == 1 and by_channel["email"]["attempts"] == 1
    # The owner reads where it went, never the hook's token.
    assert by_channel["webhook"]["target"] == f"http://127.0.0.1:{receiver.port}/hooks/leads"
    assert by_channel["email"]["target"] == "sales@example.com"
    metrics = client.get("/metrics").text
    assert 'kb_lead_deliveries_total{channel="webhook",result="delivered"} 1.0' in metrics
    assert 'kb_lead_deliveries_total{channel="email",result="delivered"} 1.0' in metrics
    assert client.app.state.services.owner.writer.flush(15)  # type: ignore[attr-defined]
    turns = client.get(f"/admin/conversations/{lead['conversation']}")
    assert turns.status_code == 200  # the lead's conversation opens among the transcripts


def test_bad_requests_get_a_clear_422(make_client: AppFactory) -> None:
    client = make_client()
    cases = [
        ({**VISITOR, "email": "ada@", "consent": True}, "email"),
        ({**VISITOR, "email": "not an address", "consent": True}, "email"),
        ({**VISITOR, "consent": False}, "consent"),
        (VISITOR, "consent"),
        ({**VISITOR, "name": "   ", "consent": True}, "name"),
        ({**VISITOR, "message": "", "consent": True}, "message"),
        ({**VISITOR, "message": "x" * 4001, "consent": True}, "message"),
        ({**VISITOR, "consent": True, "session_id": "../etc"}, "session_id"),
        ({**VISITOR, "consent": True, "phone": "123"}, "phone"),
    ]
    for body, field in cases:
        response = client.post("/leads", json=body)
        assert response.status_code == 422, (body, response.text)
        assert [e["field"] for e in response.json()["detail"]] == [field]
    consent = client.post("/leads", json={**VISITOR, "consent": False}).json()["detail"][0]["message"]
    assert consent == "consent: consent is needed to store the details and contact you"
    email = client.post("/leads", json={**VISITOR, "email": "ada@", "consent": True}).json()["error"]
    assert email.startswith("Invalid request: email: value is not a valid email address")
    assert client.get("/admin/leads").json()["total"] == 0  # nothing half-stored


def test_a_name_cannot_carry_mail_headers(make_client: AppFactory) -> None:
    client = make_client()
    body = {**VISITOR, "name": "Ada\r\nBcc: everyone@example.com", "consent": True}
    assert client.post("/leads", json=body).status_code == 201
    [lead] = client.get("/admin/leads").json()["leads"]
    assert lead["name"] == "Ada Bcc: everyone@example.com"


def test_leads_are_rate_limited_per_address(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_leads": "2/minute"})
    statuses = [client.post("/leads", json={**VISITOR, "consent": True}).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert client.post("/chat", json={"message": "hello"}).status_code == 200  # questions are not spent


def test_without_the_records_database_there_is_no_lead_capture(make_client: AppFactory) -> None:
    client = make_client(records={"record_answers": False})
    response = client.post("/leads", json={**VISITOR, "consent": True})
    assert response.status_code == 404 and "RECORD_ANSWERS" in response.json()["error"]
    assert client.get("/admin/leads").status_code == 404
    # Asked for a person, the bot points to the contact details instead of a form that is not there.
    reply = client.post("/chat", json={"message": "Can I talk to a human?"}).json()
    assert "can't put you through" in reply["response"] and reply["offer_contact"] is True


def test_a_receiver_that_is_down_gets_the_lead_once_when_it_is_back(
    make_client: AppFactory, receiver: WebhookReceiver
) -> None:
    receiver.stop()
    client = make_client(leads=webhook(receiver, lead_retry_seconds=0.1, lead_retry_max_seconds=0.3))
    assert client.post("/leads", json={**VISITOR, "consent": True}).status_code == 201
    wait_until(lambda: deliveries(client)[0]["attempts"] >= 3)
    [delivery] = deliveries(client)
    assert delivery["status"] == "pending" and "ConnectError" in delivery["last_error"]
    assert delivery["next_attempt_at"] is not None

    receiver.status = 503  # up, but not ready yet
    receiver.start()
    wait_until(lambda: deliveries(client)[0]["last_error"] == "HTTP 503 Service Unavailable")
    receiver.status = 200
    [call] = receiver.wait_for(1)
    wait_until(lambda: deliveries(client)[0]["status"] == "delivered")
    time.sleep(1.0)  # several retry periods: nothing more arrives
    assert len(receiver.received) == 1
    assert call.json()["name"] == "Ada Lovelace"


def test_given_up_deliveries_can_be_retried_from_admin(
    make_client: AppFactory, receiver: WebhookReceiver
) -> None:
    receiver.stop()
    client = make_client(leads=webhook(receiver, lead_retry_seconds=0.1, lead_give_up_hours=0.0002))
    lead_id = client.post("/leads", json={**VISITOR, "consent": True}).json()["lead_id"]
    wait_until(lambda: deliveries(client)[0]["status"] == "failed")
    assert deliveries(client)[0]["next_attempt_at"] is None
    receiver.start()
    time.sleep(0.5)
    assert receiver.received == []  # given up: not tried on its own
    assert client.post(f"/admin/leads/{'f' * 32}/retry").status_code == 404
    assert client.post(f"/admin/leads/{lead_id}/retry").json() == {"lead_id": lead_id, "status": "retrying"}
    receiver.wait_for(1)
    wait_until(lambda: deliveries(client)[0]["status"] == "delivered")


def test_a_lead_stored_before_a_sigkill_is_delivered_after_the_restart(
    tmp_path: Path, knowledge_store_dir: Path, receiver: WebhookReceiver
) -> None:
    receiver.stop()  # nothing can be delivered before the kill
    store = tmp_path / "db"
    shutil.copytree(knowledge_store_dir, store)
    env = {
        "CHROMA_PATH": str(store),
        "KNOWLEDGE_DIR": str(KNOWLEDGE),
        "GOOGLE_API_KEY": "",
        "LLM_CHAIN": "extractive",
        "DATA_DIR": str(tmp_path / "records"),
        "LEAD_WEBHOOK_URL": receiver.url,
        "LEAD_WEBHOOK_SECRET": SECRET,
        "LEAD_RETRY_SECONDS": "0.2",
        "LEAD_RETRY_MAX_SECONDS": "0.5",
    }
    first = ServerProcess(env, tmp_path / "first.log")
    try:
        first.wait_healthy()
        response = httpx.post(f"{first.url}/leads", json={**VISITOR, "consent": True}, timeout=30)
        assert response.status_code == 201
        lead_id = response.json()["lead_id"]
    finally:
        first.process.kill()  # SIGKILL: no shutdown, no flush
        first.process.wait()
        first.stop()
    receiver.start()
    second = ServerProcess(env, tmp_path / "second.log")
    try:
        second.wait_healthy()
        [call] = receiver.wait_for(1)
        assert call.headers["X-Lead-Id"] == lead_id
        time.sleep(1.5)
        assert len(receiver.received) == 1
    finally:
        second.stop()


def test_asking_for_a_person_offers_the_form_without_a_lookup(make_client: AppFactory) -> None:
    client = make_client()
    reply = client.post("/chat", json={"message": "Can I talk to a human, please?"}).json()
    assert reply["model_info"] == {**reply["model_info"], "provider": "none", "model": "handoff"}
    assert reply["offer_contact"] is True and reply["sources"] == []
    assert "Leave your name and e-mail" in reply["response"]

    nothing = client.post("/chat", json={"message": "What is the capital of Mongolia?"}).json()
    assert nothing["model_info"]["model"] == "no-match" and nothing["offer_contact"] is True
    answered = client.post("/chat", json={"message": "What services do you offer?"}).json()
    assert answered["offer_contact"] is False

    streamed = client.post("/chat/stream", json={"message": "I want to speak to a real person"})
    events = sse(streamed.text)
    done = [data for name, data in events if name == "done"]
    assert done and done[0]["offer_contact"] is True


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox_settings(request: pytest.FixtureRequest, tmp_path: Path) -> RecordsSettings:
    if request.param == "sqlite":
        return RecordsSettings(**NO_ENV_FILE, data_dir=tmp_path / "records")
    return RecordsSettings(**NO_ENV_FILE, database_url=request.getfixturevalue("postgres_url"))


def test_replicas_never_claim_one_delivery_twice(outbox_settings: RecordsSettings) -> None:
    engines = [create_records_engine(outbox_settings) for _ in range(4)]
    migrate(engines[0])
    outboxes = [Outbox(engine) for engine in engines]
    created = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(40):
        lead = NewLead(f"{n:032x}", created, "V", "v@example.org", "m", None, "{}")
        outboxes[0].add(lead, [Route("webhook", "http://x"), Route("email", "a@example.org")])
    now = datetime.now(UTC)
    claimed: list[list[str]] = [[] for _ in outboxes]

    def claim(index: int) -> None:
        while batch := outboxes[index].claim(now, now + timedelta(minutes=1), 5):
            claimed[index] += [due.id for due in batch]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(outboxes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [delivery for batch in claimed for delivery in batch]
    assert len(every) == 80 and len(set(every)) == 80  # each once, none lost
    # Held: a replica that died mid-attempt leaves them until the hold runs out, then they are due again.
    assert outboxes[1].claim(now, now + timedelta(minutes=1), 100) == []
    later = now + timedelta(minutes=2)
    assert len(outboxes[1].claim(later, later + timedelta(minutes=1), 100)) == 80
    for engine in engines:
        engine.dispose()


def test_lead_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="LEAD_WEBHOOK_SECRET"):
        LeadSettings(**NO_ENV_FILE, lead_webhook_url="https://hooks.example.com/x")
    with pytest.raises(ValidationError, match="LEAD_WEBHOOK_SECRET"):
        LeadSettings(
            **NO_ENV_FILE, lead_webhook_url="https://hooks.example.com/x", lead_webhook_secret="short"
        )
    with pytest.raises(ValidationError, match="http"):
        LeadSettings(**NO_ENV_FILE, lead_webhook_url="ftp://hooks.example.com/x", lead_webhook_secret=SECRET)
    with pytest.raises(ValidationError, match="LEAD_EMAIL_TO"):
        LeadSettings(**NO_ENV_FILE, smtp_url="smtp://mail.example.com")
    with pytest.raises(ValidationError) as refused:
        LeadSettings(
            **NO_ENV_FILE, smtp_url="imap://user:hunter2-password@mail.example.com", lead_email_to="a@b.c"
        )
    # What the service prints of a refused setting (without the input) keeps the password out.
    assert "hunter2-password" not in str(refused.value.errors(include_input=False, include_url=False))
    ok = LeadSettings(
        **NO_ENV_FILE,
        smtp_url="smtps://u:p%40ss@mail.example.com",
        lead_email_to="a@example.org, b@example.org",
    )
    assert ok.email_to() == ["a@example.org", "b@example.org"] and sorted(ok.secrets()) == ["p%40ss", "p@ss"]


def test_leads_are_listed_newest_first_a_page_at_a_time(make_client: AppFactory) -> None:
    client = make_client()
    ids = [client.post("/leads", json={**VISITOR, "consent": True}).json()["lead_id"] for _ in range(3)]
    first = client.get("/admin/leads", params={"per_page": 2}).json()
    second = client.get("/admin/leads", params={"per_page": 2, "page": 2}).json()
    assert (first["total"], first["page"], first["per_page"]) == (3, 1, 2)
    assert [lead["id"] for lead in first["leads"] + second["leads"]] == ids[::-1]
    assert client.get("/admin/leads", params={"page": 0}).status_code == 422
    assert client.get("/admin/leads", params={"page": 10**30}).status_code == 422
