"""Works off the outbox: each pending delivery is claimed, sent, and noted as delivered or tried again later
(the wait doubles, up to LEAD_RETRY_MAX_SECONDS, until LEAD_GIVE_UP_HOURS after the lead).

Runs as one task on the service's event loop; a new lead wakes it at once, and it looks again on its own
when the next retry is due or every `poll` seconds (leads left by a replica that stopped). Database calls
run in worker threads; a database that cannot be reached is logged and tried again, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from agent.leads.channels import Channel, DeliveryError
from agent.leads.outbox import DueDelivery, Outbox, Route
from agent.leads.settings import LeadSettings

log = structlog.get_logger(__name__)

CLAIM_BATCH = 20
PURGE_EVERY = timedelta(days=1)
# Past an attempt's own time limit: a claim outlives the attempt, so no second replica takes it meanwhile.
_HOLD_MARGIN = timedelta(seconds=15)

Counter = Callable[[str, str], None]  # (channel, result): delivered, retry or failed


def _now() -> datetime:
    return datetime.now(UTC)


class Courier:
    def __init__(
        self,
        outbox: Outbox,
        channels: list[Channel],
        settings: LeadSettings,
        *,
        poll: float = 30.0,
        count: Counter | None = None,
    ) -> None:
        self._outbox = outbox
        self._channels = {channel.route.channel: channel for channel in channels}
        self._settings = settings
        self._poll = poll
        self._count = count or (lambda _channel, _result: None)
        self._hold = timedelta(seconds=settings.lead_delivery_timeout) + _HOLD_MARGIN
        self._wake = asyncio.Event()
        self._next_purge: datetime | None = None

    @property
    def routes(self) -> list[Route]:
        return [channel.route for channel in self._channels.values()]

    def wake(self) -> None:
        """A lead was stored: deliver it now rather than at the next look."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()  # before the round: a lead stored during it brings another one
            wait = self._poll
            try:
                await self.deliver_due()
                await self._purge_when_due()
                wait = await self._until_next_due()
            except SQLAlchemyError as exc:
                log.warning("lead_outbox_unavailable", error=str(exc).splitlines()[0])
            except Exception:  # logged in full: a courier that died would deliver nothing more
                log.exception("lead_courier_round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def deliver_due(self) -> int:
        """One round: every delivery due now, at the same time. Returns how many were attempted."""
        now = _now()
        due = await asyncio.to_thread(self._outbox.claim, now, now + self._hold, CLAIM_BATCH)
        await asyncio.gather(*(self._attempt(delivery) for delivery in due))
        return len(due)

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.aclose()

    async def _attempt(self, delivery: DueDelivery) -> None:
        channel = self._channels.get(delivery.channel)
        try:
            if channel is None:
                raise DeliveryError(f"the {delivery.channel} channel is no longer configured")
            await asyncio.wait_for(channel.send(delivery.payload), self._settings.lead_delivery_timeout + 5)
        except (DeliveryError, TimeoutError) as exc:
            error = str(exc) or "timed out"
            retry_at = self._retry_at(delivery) if channel is not None else None
            result = "retry" if retry_at is not None else "failed"
            log.warning(
                "lead_delivery_failed",
                lead=delivery.lead_id,
                channel=delivery.channel,
                attempt=delivery.attempts + 1,
                error=error,
                retry_at=retry_at.isoformat() if retry_at else None,
            )
            await self._note(self._outbox.failed, delivery.id, error, retry_at)
        else:
            result = "delivered"
            log.info("lead_delivered", lead=delivery.lead_id, channel=delivery.channel)
            await self._note(self._outbox.delivered, delivery.id, _now())
        self._count(delivery.channel, result)

    async def _note(self, write: Callable[..., None], *args: object) -> None:
        """Notes an attempt's result. A database gone meanwhile leaves the claim to run out: the delivery is
        then tried again (the receiver may get it twice, and can tell by its X-Lead-Id)."""
        try:
            await asyncio.to_thread(write, *args)
        except SQLAlchemyError as exc:
            log.warning("lead_outbox_unavailable", error=str(exc).splitlines()[0])

    def _retry_at(self, delivery: DueDelivery) -> datetime | None:
        settings = self._settings
        now = _now()
        if now - delivery.lead_created_at >= timedelta(hours=settings.lead_give_up_hours):
            return None
        wait = min(settings.lead_retry_seconds * 2**delivery.attempts, settings.lead_retry_max_seconds)
        # Spread out: leads that failed together (the receiver was down) do not all come back at once.
        return now + timedelta(seconds=wait * random.uniform(0.8, 1.2))

    async def _until_next_due(self) -> float:
        due = await asyncio.to_thread(self._outbox.next_due)
        if due is None:
            return self._poll
        return min(self._poll, max(0.0, (due - _now()).total_seconds()))

    async def _purge_when_due(self) -> None:
        now = _now()
        if self._next_purge is not None and now < self._next_purge:
            return
        before = now - timedelta(days=self._settings.lead_retention_days)
        purged = await asyncio.to_thread(self._outbox.purge, before)
        if purged:
            log.info("leads_purged", leads=purged, before=before.isoformat())
        self._next_purge = now + PURGE_EVERY
