"""Leads and their outbox in the records database. Blocking: the service calls it from worker threads.

A lead and one delivery row per channel are written in one transaction: once `add` returns, the request is
on disk and will be delivered, whatever happens to the process afterwards. Deliveries are claimed by moving
their `next_attempt_at` past the attempt's time limit in a conditional UPDATE, so replicas sharing the
database never send one twice at the same time, and one that dies mid-attempt leaves it to the next claim.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import Connection, Engine, Table, and_, delete, func, select, update

from agent.records.tables import LeadDeliveryRow, LeadRow

ChannelName = Literal["webhook", "email"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
_ERROR_CHARS = 500  # of a receiver's error kept for the owner to read


@dataclass(frozen=True, slots=True)
class Route:
    """A way to the owner: the channel, and where it goes as the owner reads it (never with a secret)."""

    channel: ChannelName
    target: str


@dataclass(frozen=True, slots=True)
class NewLead:
    id: str
    created_at: datetime
    name: str
    email: str
    message: str
    conversation: str | None
    payload: str  # the JSON body every channel is built from, kept so that retries send the same bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    channel: ChannelName
    target: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    created_at: datetime
    name: str
    email: str
    message: str
    conversation: str | None
    deliveries: tuple[Delivery, ...]


@dataclass(frozen=True, slots=True)
class LeadPage:
    total: int
    leads: list[Lead]


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery claimed for one attempt."""

    id: str
    lead_id: str
    channel: ChannelName
    attempts: int  # before this one
    lead_created_at: datetime
    payload: str


_LEADS = cast(Table, LeadRow.__table__)
_DELIVERIES = cast(Table, LeadDeliveryRow.__table__)


def new_id() -> str:
    return uuid.uuid4().hex


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, lead: NewLead, routes: list[Route]) -> None:
        """The lead and its deliveries, all or nothing."""
        with self.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # The records' connections sync in WAL mode at checkpoints only: a power cut may take the
                # last answers. A visitor's contact request is worth the flush it takes to keep for sure.
                connection.exec_driver_sql("PRAGMA synchronous=FULL")
                connection.commit()
            try:
                self._insert(connection, lead, routes)
                connection.commit()
            finally:
                connection.rollback()  # nothing, once committed
                if sqlite:  # the connection goes back to the pool: as the others are
                    connection.exec_driver_sql("PRAGMA synchronous=NORMAL")
                    connection.commit()

    @staticmethod
    def _insert(connection: Connection, lead: NewLead, routes: list[Route]) -> None:
        connection.execute(
            _LEADS.insert(),
            {
                "id": lead.id,
                "created_at": lead.created_at,
                "name": lead.name,
                "email": lead.email,
                "message": lead.message,
                "consent_at": lead.created_at,
                "conversation": lead.conversation,
                "payload": lead.payload,
            },
        )
        if routes:
            rows = [
                {
                    "id": new_id(),
                    "lead_id": lead.id,
                    "channel": route.channel,
                    "target": route.target[:500],
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": lead.created_at,
                    "last_error": None,
                    "delivered_at": None,
                }
                for route in routes
            ]
            connection.execute(_DELIVERIES.insert(), rows)

    def claim(self, now: datetime, hold_until: datetime, limit: int) -> list[DueDelivery]:
        """Pending deliveries due at `now`, each now held by this caller until `hold_until`."""
        due = and_(LeadDeliveryRow.status == "pending", LeadDeliveryRow.next_attempt_at <= now)
        query = (
            select(LeadDeliveryRow.id, LeadDeliveryRow.next_attempt_at)
            .where(due)
            .order_by(LeadDeliveryRow.next_attempt_at)
            .limit(limit)
        )
        claimed: list[DueDelivery] = []
        with self.engine.begin() as connection:
            candidates = connection.execute(query).all()
        for delivery_id, seen in candidates:
            with self.engine.begin() as connection:
                # Only if nobody claimed it since it was read: the row still shows the time we saw.
                taken = connection.execute(
                    update(LeadDeliveryRow)
                    .where(
                        LeadDeliveryRow.id == delivery_id,
                        LeadDeliveryRow.status == "pending",
                        LeadDeliveryRow.next_attempt_at == seen,
                    )
                    .values(next_attempt_at=hold_until)
                )
                if taken.rowcount != 1:
                    continue
                row = connection.execute(
                    select(
                        LeadDeliveryRow.lead_id,
                        LeadDeliveryRow.channel,
                        LeadDeliveryRow.attempts,
                        LeadRow.created_at,
                        LeadRow.payload,
                    )
                    .join(LeadRow, LeadRow.id == LeadDeliveryRow.lead_id)
                    .where(LeadDeliveryRow.id == delivery_id)
                ).one()
            claimed.append(
                DueDelivery(delivery_id, row[0], cast(ChannelName, row[1]), row[2], row[3], row[4])
            )
        return claimed

    def delivered(self, delivery_id: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(LeadDeliveryRow)
                .where(LeadDeliveryRow.id == delivery_id)
                .values(
                    status="delivered",
                    attempts=LeadDeliveryRow.attempts + 1,
                    delivered_at=now,
                    next_attempt_at=None,
                    last_error=None,
                )
            )

    def failed(self, delivery_id: str, error: str, retry_at: datetime | None) -> None:
        """An attempt failed: tried again at `retry_at`, or given up (failed) when None."""
        with self.engine.begin() as connection:
            connection.execute(
                update(LeadDeliveryRow)
                .where(LeadDeliveryRow.id == delivery_id)
                .values(
                    status="pending" if retry_at is not None else "failed",
                    attempts=LeadDeliveryRow.attempts + 1,
                    next_attempt_at=retry_at,
                    last_error=error[:_ERROR_CHARS],
                )
            )

    def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (claimed ones included: their hold ends then)."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.min(LeadDeliveryRow.next_attempt_at)).where(LeadDeliveryRow.status == "pending")
            ).scalar()

    def retry(self, lead_id: str, now: datetime) -> bool:
        """The lead's undelivered deliveries tried again now (the owner fixed the receiver); False when there
        is no such lead."""
        with self.engine.begin() as connection:
            if connection.execute(select(LeadRow.id).where(LeadRow.id == lead_id)).first() is None:
                return False
            connection.execute(
                update(LeadDeliveryRow)
                .where(LeadDeliveryRow.lead_id == lead_id, LeadDeliveryRow.status == "failed")
                .values(status="pending", next_attempt_at=now)
            )
        return True

    def leads(self, since: datetime, limit: int, offset: int) -> LeadPage:
        """Newest first, each with its deliveries."""
        with self.engine.connect() as connection:
            total = connection.execute(
                select(func.count()).select_from(LeadRow).where(LeadRow.created_at >= since)
            ).scalar_one()
            rows = connection.execute(
                select(
                    LeadRow.id,
                    LeadRow.created_at,
                    LeadRow.name,
                    LeadRow.email,
                    LeadRow.message,
                    LeadRow.conversation,
                )
                .where(LeadRow.created_at >= since)
                .order_by(LeadRow.created_at.desc(), LeadRow.id)
                .limit(limit)
                .offset(offset)
            ).all()
            deliveries: dict[str, list[Delivery]] = defaultdict(list)
            if rows:
                found = connection.execute(
                    select(LeadDeliveryRow)
                    .where(LeadDeliveryRow.lead_id.in_([row[0] for row in rows]))
                    .order_by(LeadDeliveryRow.channel)
                ).all()
                for d in found:
                    deliveries[d.lead_id].append(
                        Delivery(
                            d.id,
                            cast(ChannelName, d.channel),
                            d.target,
                            cast(DeliveryStatus, d.status),
                            d.attempts,
                            d.next_attempt_at,
                            d.last_error,
                            d.delivered_at,
                        )
                    )
        leads = [Lead(*row, deliveries=tuple(deliveries[row[0]])) for row in rows]
        return LeadPage(total=int(total), leads=leads)

    def purge(self, before: datetime) -> int:
        """Deletes leads (and their deliveries) received before `before`; returns how many leads."""
        with self.engine.begin() as connection:
            old = select(LeadRow.id).where(LeadRow.created_at < before)
            connection.execute(delete(LeadDeliveryRow).where(LeadDeliveryRow.lead_id.in_(old)))
            result = connection.execute(delete(LeadRow).where(LeadRow.created_at < before))
            return int(result.rowcount)
