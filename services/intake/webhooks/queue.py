"""The durable delivery queue, fed by intake's consumer: every event of every topic passes here, in the
consumer's transaction (the same one that records the event as handled), so a crash loses no delivery and a
Kafka record read twice enqueues nothing twice (the consumer's claim, and the (webhook, event) key)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.read_model import service_requests
from services.intake.webhooks.domain import CaseRefs, case_key, case_refs, wants
from services.intake.webhooks.tables import webhook_cases, webhooks
from shared.clock import Clock, rfc3339
from shared.contracts.base import REGISTRY, Registry
from shared.events import EventEnvelope, IncomingEvent
from shared.eventstore import lean
from shared.eventstore.lean import Row
from shared.eventstore.tables import UtcDateTime
from shared.kernel import Application
from shared.messaging.consumer import Handler, current_chunk

# Plain SQL, as the consumer's claim: SQLAlchemy cannot cache the compiled form of INSERT .. ON CONFLICT, and
# these run once per queued event. Both SQLite and PostgreSQL take this form. The (webhook, event) key makes a
# second enqueue of one event (another path to the same fact) a no-op (a name bound twice is not taken by
# `lean.Prepared`: hence created_at and next_attempt_at, both now). All of them are `lean.Prepared` (compiled
# once; on SQLite run on the writer's connection without SQLAlchemy, see shared/eventstore/lean.py), and the
# three writes cannot fail unless the database does (ON CONFLICT DO NOTHING, no other constraint a row of
# theirs can break), so they ride with the next trip to the writer (`lean.write_later`).
_QUEUE_EVENT = lean.Prepared(
    text(
        "INSERT INTO webhook_events (event_id, event_type, body) VALUES (:event_id, :event_type, :body) "
        "ON CONFLICT DO NOTHING"
    )
)
_QUEUE_DELIVERY = lean.Prepared(
    text(
        "INSERT INTO webhook_deliveries "
        "(webhook_id, event_id, case_key, status, attempts, created_at, next_attempt_at) "
        "VALUES (:webhook_id, :event_id, :case_key, 'pending', 0, :created_at, :next_attempt_at) "
        "ON CONFLICT DO NOTHING"
    ).bindparams(bindparam("created_at", type_=UtcDateTime()), bindparam("next_attempt_at", type_=UtcDateTime()))
)
# Insert-if-absent: what the case map learned first stays (as `upsert(.., key="case_id")` without updates).
_REMEMBER_CASE = lean.Prepared(
    text(
        "INSERT INTO webhook_cases (case_id, request_id, dealer_id) VALUES (:case_id, :request_id, :dealer_id) "
        "ON CONFLICT (case_id) DO NOTHING"
    )
)
_ACTIVE_SUBSCRIPTIONS = lean.Prepared(
    select(webhooks.c.webhook_id, webhooks.c.dealer_id, webhooks.c.types).where(webhooks.c.status == "active")
)
_REQUEST_DEALER = lean.Prepared(
    select(service_requests.c.dealer_id).where(service_requests.c.request_id == bindparam("request_id"))
)
_CASE_OWNER = lean.Prepared(
    select(webhook_cases.c.request_id, webhook_cases.c.dealer_id).where(webhook_cases.c.case_id == bindparam("case_id"))
)

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

    async def dealer_of(
        self, conn: AsyncConnection, request_id: str, needed: Callable[[IncomingEvent[Any]], bool] | None = None
    ) -> tuple[bool, str | None]:
        """(whether intake knows the request, its dealer). `needed`: which events of the running consumer chunk
        will ask too (their requests are read with this one on the lean path)."""
        if request_id in self._known:
            self._known.move_to_end(request_id)
            return True, self._known[request_id]
        ahead = self._chunk_requests(request_id, needed) if needed is not None and lean.lean_driver(conn) else []
        wanted = [request_id, *ahead]
        found = await lean.query_many(conn, [(_REQUEST_DEALER, {"request_id": r}) for r in wanted])
        for other, rows in zip(wanted, found, strict=True):
            if rows:
                self._known[other] = rows[0][0]
        while len(self._known) > self.size:
            self._known.popitem(last=False)
        if not found[0]:
            return False, None
        dealer_id: str | None = found[0][0][0]
        return True, dealer_id

    def _chunk_requests(self, request_id: str, needed: Callable[[IncomingEvent[Any]], bool]) -> list[str]:
        """The first time a consumer chunk asks for a request not known yet: the other requests its `needed`
        events name that are not known either, read in the same trip (one trip for the chunk instead of one per
        event). A request not found is not kept (asked again when an event names it), as one by one."""
        chunk = current_chunk()
        if chunk is None or _REQUESTS_READ in chunk.memo:
            return []
        chunk.memo[_REQUESTS_READ] = True
        named = (getattr(event.data, "request_id", None) for event in chunk.events if needed(event))
        return [
            r for r in dict.fromkeys(named) if isinstance(r, str) and r and r != request_id and r not in self._known
        ]


_REQUESTS_READ = "webhooks: the chunk's requests read"


async def owner_of(
    conn: AsyncConnection,
    refs: CaseRefs,
    owners: RequestOwners,
    needed: Callable[[IncomingEvent[Any]], bool] | None = None,
) -> tuple[str | None, str | None]:
    """(request id, dealer id) of the case an event belongs to. intake owns the requests, so a request it
    knows decides (even a request without dealer); else what the case map learned of the job, claim or
    complaint named (the first of them it knows); else the dealer the event names itself."""
    if refs.request_id is not None:
        known, dealer_id = await owners.dealer_of(conn, refs.request_id, needed)
        if known:
            return refs.request_id, dealer_id
    if refs.case_ids:
        found = await lean.query_many(conn, [(_CASE_OWNER, {"case_id": case_id}) for case_id in refs.case_ids])
        for rows in found:
            if rows:
                request_id, dealer_id = rows[0]
                return request_id or refs.request_id, dealer_id
    return refs.request_id, refs.dealer_id


def may_teach(envelope: EventEnvelope) -> bool:
    """Whether the case map may learn from this event, before its data is read (see `teaches`)."""
    return envelope.sequence <= 1 or envelope.type.endswith(".linked")


def teaches(envelope: EventEnvelope, refs: CaseRefs) -> bool:
    """Whether the case map learns from this event: the first event of a job's, claim's or complaint's stream
    (job.created, claim.submitted, complaint.opened) names its request or dealer, and so does a complaint's
    link. Later events of a job or claim name their request or dealer themselves; only complaints may not."""
    return bool(refs.case_ids) and may_teach(envelope)


def remembering(refs: CaseRefs, request_id: str | None, dealer_id: str | None) -> list[tuple[lean.Prepared, Row]]:
    """The case map's rows for the event's jobs, claims, complaints, for later events that name only them (a
    complaint's acknowledgement names neither request nor dealer; its opening named the job, whose request
    `job.created` named). None when the event tells whose they are not."""
    if request_id is None and dealer_id is None:
        return []
    return [
        (_REMEMBER_CASE, {"case_id": case_id, "request_id": request_id, "dealer_id": dealer_id})
        for case_id in refs.case_ids
    ]


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An active subscription as the queue needs it: whose it is (None: an admin's, every dealer's cases) and
    the types and patterns it wants."""

    webhook_id: str
    dealer_id: str | None
    types: tuple[str, ...]


class ActiveSubscriptions:
    """The active subscriptions as read at one moment (their types parsed once), and which of them want an
    event type (worked out once per type)."""

    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        self.subscribers = [
            Subscriber(webhook_id, dealer_id, tuple(json.loads(types))) for webhook_id, dealer_id, types in rows
        ]
        self._by_type: dict[str, list[Subscriber]] = {}

    def asks_whose(self, event: IncomingEvent[Any]) -> bool:
        """Whether the queue will ask whose case the event is (see `DeliveryQueue.enqueue`)."""
        return bool(self.wanting(event.envelope.type)) or may_teach(event.envelope)

    def wanting(self, event_type: str) -> list[Subscriber]:
        found = self._by_type.get(event_type)
        if found is None:
            found = [s for s in self.subscribers if wants(s.types, event_type)]
            self._by_type[event_type] = found
        return found


async def active_subscriptions(conn: AsyncConnection) -> ActiveSubscriptions:
    """The active subscriptions, read once per consumer chunk (kept in its memo) and per event otherwise. The
    queue never writes subscriptions, and on SQLite nothing else writes during a chunk, so what a chunk read
    holds for its events; a subscription created, disabled or deleted meanwhile is seen from the next chunk on
    (on PostgreSQL a command may commit one during a chunk: the chunk's start decides for its events)."""
    chunk = current_chunk()
    if chunk is not None:
        kept = chunk.memo.get(ActiveSubscriptions)
        if isinstance(kept, ActiveSubscriptions):
            return kept
    found = ActiveSubscriptions(await lean.query(conn, _ACTIVE_SUBSCRIPTIONS))
    if chunk is not None:
        chunk.memo[ActiveSubscriptions] = found
    return found


class DeliveryQueue:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.owners = RequestOwners()

    async def enqueue(self, envelope: EventEnvelope, conn: AsyncConnection) -> int:
        """Queue the event for every active subscription that wants it; return how many."""
        subscriptions = await active_subscriptions(conn)
        interested = subscriptions.wanting(envelope.type)
        if not interested and not may_teach(envelope):
            return 0  # the common case when nobody subscribes to this type: no read, no write, no parse
        refs = case_refs(envelope.data_dict())
        learns = teaches(envelope, refs)
        if not interested and not learns:
            return 0
        request_id, dealer_id = await owner_of(conn, refs, self.owners, subscriptions.asks_whose)
        writes = remembering(refs, request_id, dealer_id) if learns else []
        wanting = [s.webhook_id for s in interested if s.dealer_id is None or s.dealer_id == dealer_id]
        if wanting:
            now = self.clock.now()
            key = case_key(refs, request_id, envelope.source, envelope.subject)[:200]
            writes.append(
                (_QUEUE_EVENT, {"event_id": envelope.id, "event_type": envelope.type, "body": structured(envelope)})
            )
            writes.extend(
                (
                    _QUEUE_DELIVERY,
                    {
                        "webhook_id": webhook_id,
                        "event_id": envelope.id,
                        "case_key": key,
                        "created_at": now,
                        "next_attempt_at": now,
                    },
                )
                for webhook_id in wanting
            )
        if writes:
            await lean.write_later(conn, writes)
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


__all__ = ["ActiveSubscriptions", "DeliveryQueue", "IntakeApplication", "feeding_webhooks", "structured"]
