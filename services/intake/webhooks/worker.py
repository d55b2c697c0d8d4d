"""The delivery worker: a background task of intake (started in its lifespan, like the relay) that sends due
deliveries from the durable queue, a few at a time, each case in order: a later event of a case (same
subscription, same request or subject) waits until the earlier one is delivered or has failed.

A delivery is leased before it is sent (so two intake processes do not send it together) and its outcome is
written after; a process that dies mid-send leaves the lease to expire and the delivery is sent again (at
least once: receivers dedupe by `webhook-id`)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta

from prometheus_client import Counter as Metric
from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.webhooks.commands import DisableWebhook
from services.intake.webhooks.domain import next_attempt_after, should_disable
from services.intake.webhooks.sender import Outcome, Sender
from services.intake.webhooks.settings import WebhookSettings
from services.intake.webhooks.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_events,
    webhook_health,
    webhook_secrets,
    webhooks,
)
from services.intake.webhooks.views import WebhookView
from shared.auth import Actor
from shared.clock import Clock
from shared.eventstore.database import Database
from shared.eventstore.store import new_metadata
from shared.eventstore.upsert import upsert
from shared.kernel import Application

log = logging.getLogger(__name__)

ATTEMPTS = Metric(
    "servicetrail_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (delivered, retry, failed)",
    ["outcome"],
)
DISABLED = Metric("servicetrail_webhooks_disabled_total", "Subscriptions switched off after failing too long")

_earlier = webhook_deliveries.alias("earlier")
_EARLIER_PENDING = (
    exists()
    .where(
        _earlier.c.webhook_id == webhook_deliveries.c.webhook_id,
        _earlier.c.case_key == webhook_deliveries.c.case_key,
        _earlier.c.status == "pending",
        _earlier.c.delivery_id < webhook_deliveries.c.delivery_id,
    )
    .correlate(webhook_deliveries)
)


class DeliveryWorker:
    def __init__(
        self, db: Database, application: Application, clock: Clock, settings: WebhookSettings, sender: Sender
    ) -> None:
        self.db = db
        self.application = application
        self.clock = clock
        self.settings = settings
        self.sender = sender
        self.lease = timedelta(seconds=settings.timeout_seconds + 5)
        self._stopping = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._in_flight_for: dict[int, str] = {}  # delivery → its subscription
        # One subscription (a receiver that hangs, with many cases due) takes at most half the slots, so the
        # others' deliveries keep flowing.
        self.per_subscription = max(1, settings.concurrency // 2)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception as exc:  # the database away for a moment: try again at the next tick
                log.warning("webhook worker tick failed (%s)", exc)
            try:
                await asyncio.wait_for(self._stopping.wait(), self.settings.poll_interval)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping.set()
        if self._in_flight:
            _, pending = await asyncio.wait(list(self._in_flight.values()), timeout=self.settings.timeout_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.sender.close()

    async def tick(self) -> int:
        """Start sending what is due, up to the concurrency limit; return how many were started."""
        free = self.settings.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        now = self.clock.now()
        query = (
            select(webhook_deliveries.c.delivery_id, webhook_deliveries.c.webhook_id)
            .join(webhooks, webhooks.c.webhook_id == webhook_deliveries.c.webhook_id)
            .where(
                webhook_deliveries.c.status == "pending",
                webhook_deliveries.c.next_attempt_at <= now,
                or_(webhook_deliveries.c.lease_until.is_(None), webhook_deliveries.c.lease_until < now),
                webhooks.c.status == "active",
                ~_EARLIER_PENDING,
            )
            .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.delivery_id)
            .limit(4 * self.settings.concurrency)
        )
        async with self.db.read() as conn:
            rows = [r for r in (await conn.execute(query)) if r.delivery_id not in self._in_flight]
        busy = Counter(self._in_flight_for.values())
        started = 0
        for row in rows:
            if started >= free:
                break
            if busy[row.webhook_id] >= self.per_subscription:
                continue
            if await self._lease(row.delivery_id, now):
                task = asyncio.create_task(self._deliver(row.delivery_id), name=f"webhook-delivery-{row.delivery_id}")
                self._in_flight[row.delivery_id] = task
                self._in_flight_for[row.delivery_id] = row.webhook_id
                busy[row.webhook_id] += 1
                task.add_done_callback(self._forget)
                started += 1
        return started

    def _forget(self, task: asyncio.Task[None]) -> None:
        for delivery_id in [d for d, t in self._in_flight.items() if t is task]:
            del self._in_flight[delivery_id]
            self._in_flight_for.pop(delivery_id, None)

    async def _lease(self, delivery_id: int, now: datetime) -> bool:
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.delivery_id == delivery_id,
                    webhook_deliveries.c.status == "pending",
                    or_(webhook_deliveries.c.lease_until.is_(None), webhook_deliveries.c.lease_until < now),
                )
                .values(lease_until=now + self.lease)
            )
            return bool(result.rowcount)

    async def _deliver(self, delivery_id: int) -> None:
        try:
            async with self.db.read() as conn:
                row = (
                    await conn.execute(
                        select(
                            webhook_deliveries.c.webhook_id,
                            webhook_deliveries.c.event_id,
                            webhook_deliveries.c.attempts,
                            webhook_events.c.body,
                            webhooks.c.view,
                        )
                        .join(webhook_events, webhook_events.c.event_id == webhook_deliveries.c.event_id)
                        .join(webhooks, webhooks.c.webhook_id == webhook_deliveries.c.webhook_id)
                        .where(webhook_deliveries.c.delivery_id == delivery_id)
                    )
                ).one()
                secrets = await live_secrets(conn, row.webhook_id, self.clock.now())
        except asyncio.CancelledError:
            await asyncio.shield(self._release(delivery_id))
            raise
        except Exception as exc:  # the database away: the lease expires and the delivery is due again
            log.warning("webhook delivery %s not attempted (%s)", delivery_id, exc)
            return
        url = WebhookView.model_validate_json(row.view).url
        try:
            outcome = await self.sender.send(url, row.event_id, row.body, secrets)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(delivery_id))
            raise
        except Exception as exc:  # a failure the sender did not foresee is a failed attempt, retried as any
            log.exception("webhook delivery %s failed unexpectedly", delivery_id)
            outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500], 0)
        try:
            await self._record(delivery_id, row.webhook_id, row.attempts + 1, outcome)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not recorded: the lease expires and it is sent again (at least once)
            log.warning("outcome of webhook delivery %s not recorded (%s)", delivery_id, exc)

    async def _release(self, delivery_id: int) -> None:
        """Give up the lease of a delivery whose attempt did not finish (stopping): it is due again at once."""
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.delivery_id == delivery_id)
                    .values(lease_until=None)
                )
        except Exception as exc:  # the lease then simply expires
            log.info("lease of delivery %s not released (%s)", delivery_id, exc)

    async def _record(self, delivery_id: int, webhook_id: str, attempt: int, outcome: Outcome) -> None:
        now = self.clock.now()
        async with self.db.transaction() as conn:
            await conn.execute(
                webhook_attempts.insert().values(
                    delivery_id=delivery_id,
                    attempt=attempt,
                    at=now,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )
            )
            if outcome.delivered:
                values = {"status": "delivered", "delivered_at": now, "next_attempt_at": None}
                await upsert(
                    conn,
                    webhook_health,
                    {"webhook_id": webhook_id, "failing_since": None, "last_success_at": now},
                    key="webhook_id",
                    update=("failing_since", "last_success_at"),
                )
                failing_since = None
            else:
                retry_at = next_attempt_after(attempt, now, self.settings.retry_schedule)
                values = {"status": "pending" if retry_at else "failed", "next_attempt_at": retry_at}
                await upsert(conn, webhook_health, {"webhook_id": webhook_id, "failing_since": now}, key="webhook_id")
                await conn.execute(
                    update(webhook_health)
                    .where(webhook_health.c.webhook_id == webhook_id, webhook_health.c.failing_since.is_(None))
                    .values(failing_since=now)
                )
                failing_since = (
                    await conn.execute(
                        select(webhook_health.c.failing_since).where(webhook_health.c.webhook_id == webhook_id)
                    )
                ).scalar_one()
            await conn.execute(
                update(webhook_deliveries)
                # A delivery cancelled meanwhile (its subscription deleted) stays cancelled.
                .where(webhook_deliveries.c.delivery_id == delivery_id, webhook_deliveries.c.status == "pending")
                .values(
                    attempts=attempt,
                    lease_until=None,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                    **values,
                )
            )
        ATTEMPTS.labels("delivered" if outcome.delivered else "retry" if values["next_attempt_at"] else "failed").inc()
        if failing_since is not None and should_disable(failing_since, now, self.settings.disable_after):
            DISABLED.inc()
            await self.application.handle(
                DisableWebhook(
                    webhook_id,
                    failing_since,
                    f"every delivery attempt failed since {failing_since.isoformat()} (last: {outcome.error})",
                ),
                Actor.system("system:intake"),
                new_metadata(),
            )


async def live_secrets(conn: AsyncConnection, webhook_id: str, now: datetime) -> list[str]:
    """The secrets that sign now: the current one and those still in their grace period, newest first."""
    rows = await conn.execute(
        select(webhook_secrets.c.secret)
        .where(
            webhook_secrets.c.webhook_id == webhook_id,
            or_(webhook_secrets.c.expires_at.is_(None), webhook_secrets.c.expires_at > now),
        )
        .order_by(webhook_secrets.c.secret_id.desc())
    )
    return list(rows.scalars())


__all__ = ["DeliveryWorker", "live_secrets"]
