"""Visitors' contact requests: taken (stored with the conversation so far, with their deliveries, in one
transaction), and shown to the owner with how each delivery went."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from agent.leads.channels import Turn, lead_payload
from agent.leads.desk import LeadDesk
from agent.leads.outbox import LeadPage, NewLead, new_id
from agent.records.served import conversation_of
from api.lead_schemas import LeadRequest
from api.owner import RecordsError, UnknownRecord, records_call
from api.services import Services

log = structlog.get_logger(__name__)


class LeadsOff(RecordsError):
    status = 404

    def __init__(self) -> None:
        super().__init__("Contact requests need the records database, which is off (RECORD_ANSWERS=false).")


class LeadService:
    def __init__(self, services: Services) -> None:
        self._desk = services.leads
        self._conversations = services.conversations

    @property
    def desk(self) -> LeadDesk:
        if self._desk is None:
            raise LeadsOff
        return self._desk

    async def take(self, request: LeadRequest) -> tuple[str, list[str]]:
        """Stores the request and wakes the courier; returns its id and the channels it goes through."""
        desk = self.desk
        lead_id, now = new_id(), datetime.now(UTC)
        session = request.session_id
        turns = await self._conversations.turns(session) if session else []
        conversation = conversation_of(session, lead_id) if session else None
        payload = lead_payload(
            lead_id,
            now,
            request.name,
            str(request.email),
            request.message,
            conversation,
            [Turn(turn.question, turn.answer) for turn in turns],
        )
        lead = NewLead(lead_id, now, request.name, str(request.email), request.message, conversation, payload)
        routes = desk.courier.routes
        await records_call(desk.outbox.add, lead, routes)
        desk.courier.wake()
        log.info(
            "lead_received", lead=lead_id, channels=[route.channel for route in routes], turns=len(turns)
        )
        return lead_id, [route.channel for route in routes]

    async def leads(self, days: int, limit: int, offset: int) -> LeadPage:
        since = datetime.now(UTC) - timedelta(days=days)
        return await records_call(self.desk.outbox.leads, since, limit, offset)

    async def retry(self, lead_id: str) -> None:
        if not await records_call(self.desk.outbox.retry, lead_id, datetime.now(UTC)):
            raise UnknownRecord(
                "No contact request with this id (it may be older than the retention period)."
            )
        self.desk.courier.wake()
