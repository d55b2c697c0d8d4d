"""intake's webhook tables (in intake's MetaData): the subscriptions' read rows (projected from their
streams), their secrets (never in an event), the durable delivery queue with its attempt log, the case map
that tells whose an event is, and each subscription's health (since when every attempt failed)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.read_model import PROJECTIONS, metadata
from services.intake.webhooks.domain import WebhookSubscription
from services.intake.webhooks.views import to_view
from shared.events import EventEnvelope
from shared.eventstore.tables import UtcDateTime

Id = BigInteger().with_variant(Integer(), "sqlite")

webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("created_position", BigInteger, nullable=False, unique=True),
    Column("dealer_id", String(80)),
    Column("status", String(16), nullable=False),
    Column("types", Text, nullable=False),  # JSON list
    Column("version", BigInteger, nullable=False),
    Column("view", Text, nullable=False),
)
Index("ix_webhooks_dealer", webhooks.c.dealer_id, webhooks.c.created_position)
Index("ix_webhooks_status", webhooks.c.status)

# Written by the subscribe and rotate commands, not by the projector: a rebuild keeps them.
webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("secret_id", Id, primary_key=True, autoincrement=True),
    Column("webhook_id", String(36), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),  # null: the current secret
)
Index("ix_webhook_secrets_webhook", webhook_secrets.c.webhook_id)

# One row per event some subscription wants: the CloudEvent as delivered (structured JSON).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("event_type", String(120), nullable=False),
    Column("body", Text, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", Id, primary_key=True, autoincrement=True),
    Column("webhook_id", String(36), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("case_key", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("lease_until", UtcDateTime),  # a worker is sending it until then
    Column("delivered_at", UtcDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)
Index(
    "ix_webhook_deliveries_case",
    webhook_deliveries.c.webhook_id,
    webhook_deliveries.c.case_key,
    webhook_deliveries.c.status,
    webhook_deliveries.c.delivery_id,
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("attempt_id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
)
Index("ix_webhook_attempts_delivery", webhook_attempts.c.delivery_id, webhook_attempts.c.attempt_id)

# `job:<id>`, `claim:<id>`, `complaint:<id>`… → the request (and dealer) it belongs to, learned from the
# events that name both (job.created names its request; claim.submitted its dealer).
webhook_cases = Table(
    "webhook_cases",
    metadata,
    Column("case_id", String(200), primary_key=True),
    Column("request_id", String(64)),
    Column("dealer_id", String(80)),
)

webhook_health = Table(
    "webhook_health",
    metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("failing_since", UtcDateTime),  # null: the last attempt succeeded (or none failed yet)
    Column("last_success_at", UtcDateTime),
)


async def project(conn: AsyncConnection, subscription: WebhookSubscription, stored: Sequence[EventEnvelope]) -> None:
    row = {
        "webhook_id": subscription.id,
        "dealer_id": subscription.dealer_id,
        "status": str(subscription.status),
        "types": json.dumps(subscription.types),
        "version": subscription.version,
        "view": to_view(subscription).model_dump_json(),
    }
    if stored[0].sequence == 1:
        await conn.execute(webhooks.insert().values(created_position=stored[0].position, **row))
    else:
        await conn.execute(webhooks.update().where(webhooks.c.webhook_id == subscription.id).values(**row))


PROJECTIONS.register(WebhookSubscription, project, webhooks)
