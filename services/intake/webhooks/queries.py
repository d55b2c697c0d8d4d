"""Reads of intake's webhooks within the caller's scope: subscriptions (a dealer sees its own) and each one's
delivery log, newest first, paged by keyset."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.webhooks.tables import webhook_attempts, webhook_deliveries, webhook_events, webhooks
from services.intake.webhooks.views import AttemptView, DeliveryView, WebhookView
from shared.auth import Actor
from shared.domain import NotFound
from shared.eventstore.database import Database
from shared.http.pagination import Page
from shared.keyset import keyset_page


async def webhook_view(db: Database, webhook_id: str, actor: Actor) -> WebhookView:
    async with db.read() as conn:
        row = (
            await conn.execute(select(webhooks.c.view, webhooks.c.dealer_id).where(webhooks.c.webhook_id == webhook_id))
        ).first()
    if row is None or not actor.sees_dealer(row.dealer_id):
        raise NotFound(f"webhook {webhook_id} does not exist")
    return WebhookView.model_validate_json(row.view)


async def list_webhooks(db: Database, actor: Actor, *, limit: int, after: int | None) -> Page[WebhookView]:
    """Newest first; a dealer lists its own only; deleted subscriptions are not listed."""
    query = select(webhooks.c.view, webhooks.c.created_position).where(webhooks.c.status != "deleted")
    if actor.dealer_scope is not None:
        query = query.where(webhooks.c.dealer_id == actor.dealer_scope)
    query = keyset_page(query, webhooks.c.created_position, after=after, limit=limit, newest_first=True)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return Page[WebhookView].of(
        rows, limit, item=lambda r: WebhookView.model_validate_json(r.view), key=lambda r: r.created_position
    )


_DELIVERY = select(webhook_deliveries, webhook_events.c.event_type).join(
    webhook_events, webhook_events.c.event_id == webhook_deliveries.c.event_id
)


def _delivery(row, log: list[AttemptView]) -> DeliveryView:
    return DeliveryView(
        id=row.delivery_id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        log=log,
    )


async def _logs(conn: AsyncConnection, delivery_ids: list[int]) -> dict[int, list[AttemptView]]:
    logs: dict[int, list[AttemptView]] = {i: [] for i in delivery_ids}
    if not delivery_ids:
        return logs
    rows = await conn.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
        .order_by(webhook_attempts.c.attempt_id)
    )
    for r in rows:
        logs[r.delivery_id].append(
            AttemptView(attempt=r.attempt, at=r.at, status_code=r.status_code, error=r.error, duration_ms=r.duration_ms)
        )
    return logs


async def delivery_view(conn: AsyncConnection, delivery_id: int) -> DeliveryView:
    row = (await conn.execute(_DELIVERY.where(webhook_deliveries.c.delivery_id == delivery_id))).first()
    if row is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    return _delivery(row, (await _logs(conn, [delivery_id]))[delivery_id])


async def list_deliveries(
    db: Database, webhook_id: str, *, status: str | None, limit: int, after: int | None
) -> Page[DeliveryView]:
    """The subscription's delivery log, newest first, each with its attempts."""
    query = _DELIVERY.where(webhook_deliveries.c.webhook_id == webhook_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    query = keyset_page(query, webhook_deliveries.c.delivery_id, after=after, limit=limit, newest_first=True)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
        logs = await _logs(conn, [r.delivery_id for r in rows[:limit]])
    return Page[DeliveryView].of(
        rows, limit, item=lambda r: _delivery(r, logs[r.delivery_id]), key=lambda r: r.delivery_id
    )
