"""The leads' outbox and its courier, opened once at start on the records database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from agent.leads.channels import channels_of
from agent.leads.courier import Counter, Courier
from agent.leads.outbox import Outbox
from agent.leads.settings import LeadSettings


@dataclass
class LeadDesk:
    outbox: Outbox
    courier: Courier


def open_leads(engine: Engine, settings: LeadSettings, count: Counter | None = None) -> LeadDesk:
    outbox = Outbox(engine)
    return LeadDesk(outbox, Courier(outbox, channels_of(settings), settings, count=count))
