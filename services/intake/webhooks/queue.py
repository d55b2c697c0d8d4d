"""The durable delivery queue, fed by intake's consumer: every event of every topic passes here, in the
consumer's transaction (the same one that records the event as handled), so a crash loses no delivery and a
Kafka record read twice enqueues nothing twice (the consumer's claim, and the (webhook, event) key)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.read_model import service_requests
from services.intake.webhooks.domain import CaseRefs, case_key, case_refs, wants
from services.intake.webhooks.tables import webhook_cases, webhook_deliveries, webhook_events, webhooks
from shared.clock import Clock, rfc3339
from shared.contracts.base import REGISTRY, Registry
from shared.events import EventEnvelope, IncomingEvent
from shared.eventstore.upsert import upsert
from shared.kernel import Application
from shared.messaging.consumer import Handler

# CloudEvents extensions an envelope may carry (the ones every stored event has, and those added later).
EXTENSIONS = ("sequence", "recordedat", "correlationid", "causationid", "traceparent", "actor")


def structured(envelope: EventEnvelope) -> str:
    """The event in CloudEvents structured JSON (`application/cloudevents+json`), as delivered."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "subject": envelope.subject,
        "time": rfc3339(envelope.time),
        "datacontenttype": "application/json",
        "dataschema": envelope.dataschema,
    }
    for name in EXTENSIONS:
        value = getattr(envelope, name, None)
        if value is None:
            continue
        body[name] = rfc3339(value) if name == "recordedat" else str(value)
    body["data"] = json.loads(envelope.data)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def owner_of(conn: AsyncConnection, refs: CaseRefs) -> tuple[str | None, str | None]:
    """(request id, dealer id) of the case an event belongs to. intake owns the requests, so a request it
    knows decides (even a request without dealer); else what the case map learned of the job, claim or
    complaint named; else the dealer the event names itself."""
    if refs.request_id is not None:
        row = (
            await conn.execute(
                select(service_requests.c.dealer_id).where(service_requests.c.request_id == refs.request_id)
            )
        ).first()
        if row is not None:
            return refs.request_id, row.dealer_id
    for case_id in refs.case_ids:
        row = (
            await conn.execute(
                select(webhook_cases.c.request_id, webhook_cases.c.dealer_id).where(webhook_cases.c.case_id == case_id)
            )
        ).first()
        if row is not None:
            return row.request_id or refs.request_id, row.dealer_id
    return refs.request_id, refs.dealer_id


async def remember(conn: AsyncConnection, refs: CaseRefs, request_id: str | None, dealer_id: str | None) -> None:
    """Note whose the event's jobs, claims, complaints are, for later events that name only them (a job's
    `job.accepted` names no dealer; it is the request's, learned from `job.created`)."""
    if request_id is None and dealer_id is None:
        return
    for case_id in refs.case_ids:
        await upsert(
            conn, webhook_cases, {"case_id": case_id, "request_id": request_id, "dealer_id": dealer_id}, key="case_id"
        )


class DeliveryQueue:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def enqueue(self, envelope: EventEnvelope, conn: AsyncConnection) -> int:
        """Queue the event for every active subscription that wants it; return how many."""
        refs = case_refs(envelope.data_dict())
        request_id, dealer_id = await owner_of(conn, refs)
        await remember(conn, refs, request_id, dealer_id)
        rows = await conn.execute(
            select(webhooks.c.webhook_id, webhooks.c.dealer_id, webhooks.c.types).where(webhooks.c.status == "active")
        )
        wanting = [
            r.webhook_id
            for r in rows
            if (r.dealer_id is None or r.dealer_id == dealer_id) and wants(json.loads(r.types), envelope.type)
        ]
        if not wanting:
            return 0
        now = self.clock.now()
        key = case_key(refs, request_id, envelope.source, envelope.subject)
        await upsert(
            conn,
            webhook_events,
            {"event_id": envelope.id, "event_type": envelope.type, "body": structured(envelope)},
            key="event_id",
        )
        await upsert(
            conn,
            webhook_deliveries,
            [
                {
                    "webhook_id": webhook_id,
                    "event_id": envelope.id,
                    "case_key": key[:200],
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                }
                for webhook_id in wanting
            ],
            key=("webhook_id", "event_id"),
        )
        return len(wanting)


def feeding_webhooks(
    reactions: Mapping[str, Handler], queue: DeliveryQueue, registry: Registry = REGISTRY
) -> dict[str, Handler]:
    """intake's consumer table: every contract event type, its reaction (if intake has one) and then the
    webhook queue, in the one transaction in which the consumer records the event as handled."""

    def feeding(reaction: Handler | None) -> Handler:
        async def handle(event: IncomingEvent, conn: AsyncConnection) -> None:
            if reaction is not None:
                await reaction(event, conn)
            await queue.enqueue(event.envelope, conn)

        return handle

    return {model.event_type: feeding(reactions.get(model.event_type)) for model in registry.all()}


class IntakeApplication(Application[Any]):
    """intake's Application: the kernel's, with a consumer table that also feeds the webhook queue."""

    def __init__(self, kernel, queue: DeliveryQueue) -> None:
        super().__init__(kernel)
        self.queue = queue

    def handler_table(self) -> dict[str, Handler]:
        return feeding_webhooks(super().handler_table(), self.queue)


__all__ = ["DeliveryQueue", "IntakeApplication", "feeding_webhooks", "structured"]
