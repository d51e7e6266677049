"""What a lead looks like on its way out, and the two ways it goes: a signed webhook and an e-mail.

The JSON body is built once, when the lead is stored; the webhook sends exactly those bytes, signed with
`X-Signature-SHA256: <hex HMAC-SHA256 of the body>`, and names the lead in `X-Lead-Id` so that a receiver can
drop the rare second copy (a replica killed after the receiver answered, before the delivery was noted).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx
import structlog

from agent.leads.outbox import Route
from agent.leads.settings import LeadSettings

SIGNATURE_HEADER = "X-Signature-SHA256"
LEAD_ID_HEADER = "X-Lead-Id"
USER_AGENT = "kb-chatbot-leads/1"

log = structlog.get_logger(__name__)


class DeliveryError(Exception):
    """An attempt that did not deliver; its message is what the owner reads in /admin."""


@dataclass(frozen=True, slots=True)
class Turn:
    question: str
    answer: str


def lead_payload(
    lead_id: str,
    created_at: datetime,
    name: str,
    email: str,
    message: str,
    conversation: str | None,
    turns: list[Turn],
) -> str:
    body: dict[str, Any] = {
        "type": "lead",
        "id": lead_id,
        "created_at": created_at.isoformat(),
        "name": name,
        "email": email,
        "message": message,
        "consent": True,  # a lead is only taken with the visitor's consent
        "conversation": {
            "id": conversation,
            "turns": [{"question": t.question, "answer": t.answer} for t in turns],
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Channel(Protocol):
    route: Route

    async def send(self, payload: str) -> None:
        """Delivers one lead or raises `DeliveryError`."""
        ...

    async def aclose(self) -> None: ...


class WebhookChannel:
    def __init__(self, url: str, secret: str, timeout: float) -> None:
        parts = urlsplit(url)
        # What the owner reads in /admin: no credentials or query (a hook's token often sits there).
        self.route = Route("webhook", f"{parts.scheme}://{parts.hostname}{_port(parts.port)}{parts.path}")
        self._url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)

    async def send(self, payload: str) -> None:
        body = payload.encode()
        lead_id = json.loads(payload)["id"]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self._secret, body),
            LEAD_ID_HEADER: lead_id,
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        if not response.is_success:
            raise DeliveryError(f"HTTP {response.status_code} {response.reason_phrase}".strip())

    async def aclose(self) -> None:
        await self._client.aclose()


class EmailChannel:
    """smtplib, in a worker thread: SMTP has no place on the event loop."""

    def __init__(self, smtp_url: str, sender: str, recipients: list[str], timeout: float) -> None:
        parts = urlsplit(smtp_url)
        self._scheme = parts.scheme
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._recipients = recipients
        self._timeout = timeout
        self.route = Route("email", ", ".join(recipients))

    def message(self, payload: str) -> EmailMessage:
        lead = json.loads(payload)
        mail = EmailMessage()
        mail["Subject"] = f"Contact request from {lead['name']}"
        mail["From"] = self._sender
        mail["To"] = ", ".join(self._recipients)
        mail["Reply-To"] = formataddr((lead["name"], lead["email"]))
        # The same id on every attempt: a mail system that got it twice shows it once.
        mail["Message-ID"] = make_msgid(idstring=f"lead-{lead['id']}", domain="kb-chatbot")
        mail[LEAD_ID_HEADER] = lead["id"]
        lines = [
            f"{lead['name']} <{lead['email']}> asked to be contacted ({lead['created_at']}).",
            "",
            lead["message"],
        ]
        turns = lead["conversation"]["turns"]
        if turns:
            lines += ["", "The conversation with the chatbot before:", ""]
            for turn in turns:
                lines += [f"Visitor: {turn['question']}", f"Chatbot: {turn['answer']}", ""]
        mail.set_content("\n".join(lines))
        return mail

    def send_blocking(self, payload: str) -> None:
        mail = self.message(payload)
        try:
            if self._scheme == "smtps":
                context = ssl.create_default_context()
                with smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context) as smtp:
                    self._login_and_send(smtp, mail)
            else:
                with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                    if self._scheme == "smtp+starttls":
                        smtp.starttls(context=ssl.create_default_context())
                    self._login_and_send(smtp, mail)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    def _login_and_send(self, smtp: smtplib.SMTP, mail: EmailMessage) -> None:
        if self._user is not None:
            smtp.login(self._user, self._password or "")
        refused = smtp.send_message(mail)  # raises when every recipient is refused
        if refused:  # not tried again: the others have it, and would get it twice
            log.warning("lead_email_recipients_refused", refused=sorted(refused))

    async def send(self, payload: str) -> None:
        await asyncio.to_thread(self.send_blocking, payload)

    async def aclose(self) -> None:
        return None


def _port(port: int | None) -> str:
    return f":{port}" if port else ""


def channels_of(settings: LeadSettings) -> list[Channel]:
    """The channels the settings configure (none: leads are only kept, for /admin)."""
    found: list[Channel] = []
    if settings.lead_webhook_url and settings.lead_webhook_secret is not None:
        found.append(
            WebhookChannel(
                settings.lead_webhook_url,
                settings.lead_webhook_secret.get_secret_value(),
                settings.lead_delivery_timeout,
            )
        )
    if settings.smtp_url is not None and settings.email_to():
        found.append(
            EmailChannel(
                settings.smtp_url.get_secret_value(),
                settings.lead_email_from,
                settings.email_to(),
                settings.lead_delivery_timeout,
            )
        )
    return found
