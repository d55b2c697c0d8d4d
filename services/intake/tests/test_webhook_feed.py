"""intake's webhook feed applied a consumer chunk at a time (the active subscriptions read once per chunk, their
types parsed once) queues exactly what it queued one event at a time: the same deliveries for the same events
and subscriptions, a dealer's subscription only its own cases, the same case keys and case map; a subscription
disabled, deleted or created between chunks takes effect from the next chunk; many events of one chunk are each
queued once, a record delivered twice included."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

import services.intake.webhooks.tables  # noqa: F401  (declares the webhook tables in intake's metadata)
from deploy.postgres.launcher import create_database
from services.intake.read_model import metadata, service_requests
from services.intake.tests.webhook_support import acknowledged, complaint_about_job
from services.intake.webhooks.queue import DeliveryQueue, feeding_webhooks
from services.intake.webhooks.tables import webhook_cases, webhook_deliveries, webhook_events, webhooks
from shared.clock import SystemClock, utcnow
from shared.contracts.topics import INTAKE
from shared.contracts.warranty import ClaimSubmitted
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.tables import service_schema
from shared.messaging.cloudevents import to_record
from shared.messaging.consumer import IdempotentConsumer
from shared.messaging.kafka import reliable_producer
from shared.testing.contract_events import job_created
from shared.testing.kafka import envelope_for

D1, D2 = "D-one", "D-two"
R1, R2 = "R-of-d1", "R-of-d2"


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database_url(request, tmp_path):
    """Makes a fresh database's URL on SQLite (the lean path) or PostgreSQL (SQLAlchemy's path)."""

    async def make(name: str) -> str:
        if request.param == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / name}.db"
        server = request.getfixturevalue("postgres_server")
        return await create_database(server, f"intake_{name}_{uuid.uuid4().hex[:8]}")

    return make


async def intake_database(url: str) -> Database:
    """intake's tables with two requests (one per dealer) and four active subscriptions: an admin's to jobs,
    D1's to job.created and complaints, D2's to everything, and D1's to claims."""
    db = Database(url, sqlite_synchronous="NORMAL")
    await db.create_all(service_schema(metadata))
    async with db.transaction() as conn:
        for position, (request_id, dealer_id) in enumerate(((R1, D1), (R2, D2)), start=1):
            await conn.execute(
                service_requests.insert().values(
                    request_id=request_id,
                    received_position=position,
                    status="received",
                    dealer_id=dealer_id,
                    serial=f"SN-{position}",
                    received_at=utcnow(),
                    version=1,
                    view="{}",
                )
            )
        subscriptions: list[tuple[str, str | None, list[str]]] = [
            ("W-admin-jobs", None, ["job.*"]),
            ("W-d1", D1, ["job.created", "complaint.*"]),
            ("W-d2-all", D2, ["*"]),
            ("W-d1-claims", D1, ["claim.submitted"]),
        ]
        for position, (webhook_id, owner, types) in enumerate(subscriptions, start=1):
            await add_subscription(conn, webhook_id, owner, types, position)
    return db


async def add_subscription(conn, webhook_id: str, dealer_id: str | None, types: list[str], position: int) -> None:
    await conn.execute(
        webhooks.insert().values(
            webhook_id=webhook_id,
            created_position=position,
            dealer_id=dealer_id,
            status="active",
            types=json.dumps(types),
            version=1,
            view="{}",
        )
    )


def feed_of(db: Database, event_bus: str, chunk: int) -> IdempotentConsumer:
    """intake's consumer, feeding the webhook queue only, `chunk` events per transaction."""
    return IdempotentConsumer(
        db=db,
        name="intake",
        topics=[INTAKE],
        handlers=feeding_webhooks({}, DeliveryQueue(SystemClock())),
        consumer_factory=lambda: None,  # type: ignore[arg-type, return-value]  # records are handed over directly
        producer_factory=lambda: reliable_producer(event_bus, "intake-test-dlq"),
        transaction_size=chunk,
    )


def as_records(envelopes: list[EventEnvelope], first_offset: int = 0) -> list[ConsumerRecord]:
    records = []
    for offset, envelope in enumerate(envelopes, start=first_offset):
        topic, key, value, headers = to_record(envelope)
        records.append(ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers))
    return records


def claim(claim_id: str, job_id: str, request_id: str, dealer_id: str) -> ClaimSubmitted:
    return ClaimSubmitted(
        claim_id=claim_id,
        job_id=job_id,
        request_id=request_id,
        dealer_id=dealer_id,
        labour_minutes=30,
        swap_ids=[],
        labour_amount="10.00",
        parts_amount="0.00",
        total_amount="10.00",
        currency="EUR",
        submitted_by="dealer",
    )


def mixed_stream() -> list[EventEnvelope]:
    """Jobs of both dealers' requests and of a request intake does not know, complaints that name only the job
    (their acknowledgements name only the complaint), a claim of a request intake does not know, naming its
    dealer; a job created twice (one event delivered twice)."""
    stream: list[EventEnvelope] = []
    for n, request_id in enumerate((R1, R2, "R-unknown", R1, R2)):
        stream.append(envelope_for(job_created(f"J{n}", request_id)))
        stream.append(envelope_for(complaint_about_job(f"C{n}", f"J{n}")))
        stream.append(envelope_for(acknowledged(f"C{n}"), sequence=2))
    stream.append(envelope_for(claim("CL1", "J-other", "R-elsewhere", D1)))
    stream.append(stream[0])  # the same event again
    return stream


async def queued(db: Database) -> tuple[set[tuple[str, str, str]], set[tuple[Any, ...]], int]:
    """(webhook, event, case key) of every delivery queued, the case map, and how many events are stored."""
    async with db.transaction() as conn:
        deliveries = await conn.execute(
            select(webhook_deliveries.c.webhook_id, webhook_deliveries.c.event_id, webhook_deliveries.c.case_key)
        )
        cases = await conn.execute(
            select(webhook_cases.c.case_id, webhook_cases.c.request_id, webhook_cases.c.dealer_id)
        )
        stored = len((await conn.execute(select(webhook_events.c.event_id))).all())
        return {tuple(row) for row in deliveries}, {tuple(row) for row in cases}, stored


async def test_a_chunk_queues_the_same_deliveries_case_keys_and_case_map_as_one_event_at_a_time(
    new_database_url, event_bus
):
    stream = mixed_stream()
    one_at_a_time = await intake_database(await new_database_url("single"))
    chunked = await intake_database(await new_database_url("chunked"))
    try:
        assert await feed_of(one_at_a_time, event_bus, chunk=1).handle_records(as_records(stream)) == len(stream)
        assert await feed_of(chunked, event_bus, chunk=100).handle_records(as_records(stream)) == len(stream)
        single, chunk = await queued(one_at_a_time), await queued(chunked)
    finally:
        await one_at_a_time.dispose()
        await chunked.dispose()

    assert chunk == single
    deliveries = chunk[0]
    by_event = {e.id: e for e in stream}

    def sent_to(webhook_id: str) -> list[tuple[str, str]]:
        return sorted((by_event[e].type, key) for w, e, key in deliveries if w == webhook_id)

    # D1's cases are J0 and J3 (request R1): their job.created, complaints opened and acknowledged.
    assert sent_to("W-d1") == sorted(
        [("job.created", f"request:{R1}")] * 2
        + [("complaint.opened", f"request:{R1}")] * 2
        + [("complaint.acknowledged", f"request:{R1}")] * 2
    )
    # D2 wants everything, but only of its own request R2 (J1, J4): never D1's, never the unknown request's.
    assert sent_to("W-d2-all") == sorted(
        [("job.created", f"request:{R2}")] * 2
        + [("complaint.opened", f"request:{R2}")] * 2
        + [("complaint.acknowledged", f"request:{R2}")] * 2
    )
    # The admin's subscription gets every job, the unknown request's keyed by it all the same.
    assert sent_to("W-admin-jobs") == sorted(
        [("job.created", f"request:{R1}")] * 2
        + [("job.created", f"request:{R2}")] * 2
        + [("job.created", "request:R-unknown")]
    )
    # The claim names its dealer: D1's claim subscription gets it, D2's does not.
    assert sent_to("W-d1-claims") == [("claim.submitted", "request:R-elsewhere")]
    assert ("complaint:C0", R1, D1) in chunk[1] and ("job:J1", R2, D2) in chunk[1]


async def test_a_subscription_disabled_deleted_or_created_between_chunks_counts_from_the_next_chunk(
    new_database_url, event_bus
):
    db = await intake_database(await new_database_url("changes"))
    feed = feed_of(db, event_bus, chunk=100)
    first = [envelope_for(job_created(f"J{n}", R2)) for n in range(3)]
    second = [envelope_for(job_created(f"J{n}", R2)) for n in range(3, 6)]
    try:
        await feed.handle_records(as_records(first))
        async with db.transaction() as conn:
            await conn.execute(webhooks.update().where(webhooks.c.webhook_id == "W-d2-all").values(status="disabled"))
            await conn.execute(
                webhooks.update().where(webhooks.c.webhook_id == "W-admin-jobs").values(status="deleted")
            )
            await add_subscription(conn, "W-d2-new", D2, ["job.created"], position=9)
        await feed.handle_records(as_records(second, first_offset=3))
        deliveries, _, _ = await queued(db)
    finally:
        await db.dispose()

    def events_of(webhook_id: str) -> set[str]:
        return {e for w, e, _ in deliveries if w == webhook_id}

    assert events_of("W-d2-all") == events_of("W-admin-jobs") == {e.id for e in first}
    assert events_of("W-d2-new") == {e.id for e in second}


async def test_each_of_many_events_in_one_chunk_is_queued_once_for_each_subscription_that_wants_it(
    new_database_url, event_bus
):
    db = await intake_database(await new_database_url("many"))
    stream = [envelope_for(job_created(f"J-{uuid.uuid4().hex[:8]}", R1)) for _ in range(150)]
    try:
        feed = feed_of(db, event_bus, chunk=200)
        await feed.handle_records(as_records(stream + stream[:20]))  # twenty of them delivered twice
        deliveries, _, stored = await queued(db)
    finally:
        await db.dispose()

    ids = {e.id for e in stream}
    assert sorted(w for w, _, _ in deliveries) == sorted(["W-admin-jobs", "W-d1"] * len(stream))
    assert {e for _, e, _ in deliveries} == ids
    assert stored == len(stream)
    assert feed.counts["applied"] == len(stream) and feed.counts["duplicate"] == 20
