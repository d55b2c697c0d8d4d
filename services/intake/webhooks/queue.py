"""The durable delivery queue, fed by intake's consumer: every event of every topic passes here, in the
consumer's transaction (the same one that records the event as handled), so a crash loses no delivery and a
Kafka record read twice enqueues nothing twice (the consumer's claim, and the (webhook, event) key)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.read_model import service_requests
from services.intake.webhooks.domain import CaseRefs, case_key, case_refs, wants
from services.intake.webhooks.tables import webhook_cases, webhooks
from shared.clock import Clock, rfc3339
from shared.contracts.base import REGISTRY, Registry
from shared.events import EventEnvelope, IncomingEvent
from shared.eventstore.tables import UtcDateTime
from shared.eventstore.upsert import upsert
from shared.kernel import Application
from shared.messaging.consumer import Handler

# Plain SQL, as the consumer's claim: SQLAlchemy cannot cache the compiled form of INSERT .. ON CONFLICT, and
# these run once per queued event. Both SQLite and PostgreSQL take this form. The (webhook, event) key makes a
# second enqueue of one event (another path to the same fact) a no-op.
_QUEUE_EVENT = text(
    "INSERT INTO webhook_events (event_id, event_type, body) VALUES (:event_id, :event_type, :body) "
    "ON CONFLICT DO NOTHING"
)
_QUEUE_DELIVERY = text(
    "INSERT INTO webhook_deliveries (webhook_id, event_id, case_key, status, attempts, created_at, next_attempt_at) "
    "VALUES (:webhook_id, :event_id, :case_key, 'pending', 0, :now, :now) ON CONFLICT DO NOTHING"
).bindparams(bindparam("now", type_=UtcDateTime()))

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


class RequestOwners:
    """request id → its dealer, from intake's own rows, remembered in the process: a request's dealer never
    changes, and a row the consumer can read was committed by the command that received the request."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._known: OrderedDict[str, str | None] = OrderedDict()

    async def dealer_of(self, conn: AsyncConnection, request_id: str) -> tuple[bool, str | None]:
        """(whether intake knows the request, its dealer)."""
        if request_id in self._known:
            self._known.move_to_end(request_id)
            return True, self._known[request_id]
        row = (
            await conn.execute(select(service_requests.c.dealer_id).where(service_requests.c.request_id == request_id))
        ).first()
        if row is None:
            return False, None
        self._known[request_id] = row.dealer_id
        if len(self._known) > self.size:
            self._known.popitem(last=False)
        return True, row.dealer_id


async def owner_of(conn: AsyncConnection, refs: CaseRefs, owners: RequestOwners) -> tuple[str | None, str | None]:
    """(request id, dealer id) of the case an event belongs to. intake owns the requests, so a request it
    knows decides (even a request without dealer); else what the case map learned of the job, claim or
    complaint named; else the dealer the event names itself."""
    if refs.request_id is not None:
        known, dealer_id = await owners.dealer_of(conn, refs.request_id)
        if known:
            return refs.request_id, dealer_id
    for case_id in refs.case_ids:
        row = (
            await conn.execute(
                select(webhook_cases.c.request_id, webhook_cases.c.dealer_id).where(webhook_cases.c.case_id == case_id)
            )
        ).first()
        if row is not None:
            return row.request_id or refs.request_id, row.dealer_id
    return refs.request_id, refs.dealer_id


def teaches(envelope: EventEnvelope, refs: CaseRefs) -> bool:
    """Whether the case map learns from this event: the first event of a job's, claim's or complaint's stream
    (job.created, claim.submitted, complaint.opened) names its request or dealer, and so does a complaint's
    link. Later events of a job or claim name their request or dealer themselves; only complaints may not."""
    return bool(refs.case_ids) and (envelope.sequence <= 1 or envelope.type.endswith(".linked"))


async def remember(conn: AsyncConnection, refs: CaseRefs, request_id: str | None, dealer_id: str | None) -> None:
    """Note whose the event's jobs, claims, complaints are, for later events that name only them (a
    complaint's acknowledgement names neither request nor dealer; its opening named the job, whose request
    `job.created` named)."""
    if request_id is None and dealer_id is None:
        return
    for case_id in refs.case_ids:
        await upsert(
            conn, webhook_cases, {"case_id": case_id, "request_id": request_id, "dealer_id": dealer_id}, key="case_id"
        )


class DeliveryQueue:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.owners = RequestOwners()

    async def enqueue(self, envelope: EventEnvelope, conn: AsyncConnection) -> int:
        """Queue the event for every active subscription that wants it; return how many."""
        rows = await conn.execute(
            select(webhooks.c.webhook_id, webhooks.c.dealer_id, webhooks.c.types).where(webhooks.c.status == "active")
        )
        interested = [r for r in rows if wants(json.loads(r.types), envelope.type)]
        refs = case_refs(envelope.data_dict())
        learns = teaches(envelope, refs)
        if not interested and not learns:
            return 0  # the common case when nobody subscribes to this type: one small query
        request_id, dealer_id = await owner_of(conn, refs, self.owners)
        if learns:
            await remember(conn, refs, request_id, dealer_id)
        wanting = [r.webhook_id for r in interested if r.dealer_id is None or r.dealer_id == dealer_id]
        if not wanting:
            return 0
        now = self.clock.now()
        key = case_key(refs, request_id, envelope.source, envelope.subject)
        await conn.execute(
            _QUEUE_EVENT, {"event_id": envelope.id, "event_type": envelope.type, "body": structured(envelope)}
        )
        await conn.execute(
            _QUEUE_DELIVERY,
            [
                {"webhook_id": webhook_id, "event_id": envelope.id, "case_key": key[:200], "now": now}
                for webhook_id in wanting
            ],
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
