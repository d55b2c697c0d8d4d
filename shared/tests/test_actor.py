"""Every stored event records who caused it (design.md, "Audit"): the token's user (with the dealer of a dealer
token) for a command, the service itself for a reaction or a deadline; in the event store, on Kafka as the
CloudEvents extension `ce_actor`, and back in the consumer's envelope. Events stored before actors were kept
read as `system:unknown`. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from shared.auth import Actor, Principal, Role
from shared.contracts.intake import ServiceRequestCancelled, ServiceRequestEscalated
from shared.contracts.topics import INTAKE
from shared.events import UNKNOWN_ACTOR, ActorId, IncomingEvent
from shared.eventstore import Database, EventStore
from shared.eventstore.bulk import start_streams
from shared.eventstore.store import new_metadata
from shared.eventstore.tables import events, outbox, service_schema
from shared.kernel import Application, UnitOfWork
from shared.messaging.cloudevents import from_record
from shared.messaging.kafka import reliable_producer
from shared.messaging.relay import OutboxRelay
from shared.migrations import alembic_config
from shared.scheduling import Deadline
from shared.testing.app import eventually
from shared.testing.escalations import append_escalations
from shared.testing.kafka import collect, envelope_for, headers_of
from shared.tests.conftest import database_with
from shared.tests.test_kernel import (
    NOW,
    STAFF,
    Counter,
    CounterIncreased,
    Increase,
    Start,
    counter_a_counting_cancellations,
    kernel,
    own,
)

DEALER_CLERK = Actor.of(Principal("clerk-7", frozenset({Role.dealer, Role.agent}), dealer_id="D1"))


@pytest.fixture
async def db(database_url: str):
    async with database_with(database_url, service_schema(own)) as database:
        yield database


async def actors_by_version(db: Database, stream_id: str) -> list[str]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(events.c.actor).where(events.c.stream_id == stream_id).order_by(events.c.version)
        )
        return list(rows.scalars())


# --- the format ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actor, text",
    [
        (ActorId.user("agent-1"), "user:agent-1"),
        (ActorId.user("clerk-7", "D1"), "user:clerk-7;dealer=D1"),
        (ActorId.user("ann@example.com"), "user:ann@example.com"),
        (ActorId.user("odd;dealer=D2", "D;1%"), "user:odd%3Bdealer=D2;dealer=D%3B1%25"),
        (ActorId.user("line\nbreak"), "user:line%0Abreak"),
        (ActorId.system("dispatch"), "system:dispatch"),
    ],
)
def test_an_actor_is_written_as_kind_name_and_dealer_and_reads_back_unambiguously(actor, text):
    assert str(actor) == text
    assert ActorId.parse(text) == actor


def test_a_dealer_token_acts_as_its_user_with_its_dealer_and_staff_as_their_user():
    assert str(DEALER_CLERK.audit_id) == "user:clerk-7;dealer=D1"
    assert str(STAFF.audit_id) == "user:agent-1"
    admin_of_dealer = Actor.of(Principal("root", frozenset({Role.dealer, Role.admin}), dealer_id="D1"))
    assert str(admin_of_dealer.audit_id) == "user:root;dealer=D1"  # unconfined, but still the dealer's token
    assert str(Actor.system("warranty").audit_id) == "system:warranty"


# --- the kernel stamps it -----------------------------------------------------------------------------------


async def test_a_commands_events_record_the_token_that_sent_it_with_its_dealer(db):
    app = Application(kernel(db))
    await app.handle(Start("a", dealer_id="D1"), STAFF, new_metadata())
    await app.handle(Increase(("a",)), DEALER_CLERK, new_metadata())
    assert await actors_by_version(db, "a") == ["user:agent-1", "user:clerk-7;dealer=D1"]


async def test_an_aggregate_knows_who_caused_each_of_its_events_also_before_they_are_stored(db):
    seen: list[list[str]] = []

    async def increase_and_look(command: Increase, actor: Actor, uow: UnitOfWork) -> None:
        counter = await uow.get(Counter, command.counter_ids[0])
        counter.record(CounterIncreased(counter_id=counter.id), uow.step_time(None, counter))
        seen.append(counter.history_actors())

    app = Application(kernel(db, commands={Start: kernel(db).commands[Start], Increase: increase_and_look}))
    await app.handle(Start("a", dealer_id="D1"), STAFF, new_metadata())
    await app.handle(Increase(("a",)), DEALER_CLERK, new_metadata())
    assert seen == [["user:agent-1", "user:clerk-7;dealer=D1"]]


async def test_a_reaction_is_the_services_own_not_the_actor_of_its_cause(db):
    app = await counter_a_counting_cancellations(db)
    cause = ServiceRequestCancelled(request_id="a", reason="duplicate")
    envelope = envelope_for(cause, source="intake", time=NOW, actor="user:clerk-7;dealer=D1")
    async with db.transaction() as conn:
        await app.handler_table()[cause.event_type](IncomingEvent(envelope, cause), conn)
    assert await actors_by_version(db, "a") == ["user:agent-1", "system:test"]


async def test_a_deadline_is_the_services_own(db):
    async def on_deadline(deadline: Deadline, uow: UnitOfWork) -> None:
        counter = await uow.get(Counter, deadline.stream_id)
        counter.record(CounterIncreased(counter_id=counter.id), deadline.due_at)

    app = Application(kernel(db, on_deadline=on_deadline))
    await app.handle(Start("a"), STAFF, new_metadata())
    fire = app.deadline_handler()
    assert fire is not None
    async with db.transaction() as conn:
        await fire(Deadline("a:look", "a", "look", NOW + timedelta(hours=1)), conn)
    assert await actors_by_version(db, "a") == ["user:agent-1", "system:test"]


async def test_an_aggregate_folded_again_keeps_who_caused_each_event(db):
    app = Application(kernel(db))
    await app.handle(Start("a", dealer_id="D1"), STAFF, new_metadata())
    await app.handle(Increase(("a",)), DEALER_CLERK, new_metadata())
    async with db.read() as conn:
        uow = app.unit_of_work(conn, new_metadata(), ActorId.system("test"))
        counter = await uow.get(Counter, "a")
    assert counter.history_actors() == ["user:agent-1", "user:clerk-7;dealer=D1"]


# --- the store refuses an event without one ------------------------------------------------------------------


async def test_the_database_refuses_an_event_row_without_an_actor(db):
    row = {
        "event_id": str(uuid.uuid4()),
        "stream_id": "s",
        "stream_type": "t",
        "version": 1,
        "type": "service_request.escalated",
        "schema_version": 1,
        "topic": INTAKE,
        "data": "{}",
        "occurred_at": NOW,
        "recorded_at": NOW,
        "correlation_id": "c",
        "causation_id": "c",
    }
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(insert(events), [row])


async def test_a_bulk_import_records_who_ran_it_on_every_stream_it_starts(db):
    counters = []
    for counter_id in ("u1", "u2"):
        counter = Counter(id=counter_id)
        counter.record(CounterIncreased(counter_id=counter_id), NOW)
        counters.append(counter)
    async with db.transaction() as conn:
        stored = await start_streams(
            conn, EventStore("test"), counters, new_metadata(), actor=ActorId.user("importer", "D1")
        )
    assert {e.actor for e in stored} == {"user:importer;dealer=D1"}
    assert await actors_by_version(db, "u2") == ["user:importer;dealer=D1"]


# --- events stored before actors ------------------------------------------------------------------------------


async def test_events_stored_before_actors_were_kept_read_as_system_unknown_and_new_ones_must_name_one(
    database_url,
):
    """Upgraded from the schema before shared_0003: the old rows are `system:unknown`, and the column has no
    default left, so an insert that leaves the actor out is refused."""
    config = alembic_config("intake", database_url)
    await asyncio.to_thread(command.upgrade, config, "shared_0002")
    engine = create_async_engine(database_url)
    legacy = {
        "event_id": str(uuid.uuid4()),
        "stream_id": "old-1",
        "stream_type": "service_request",
        "version": 1,
        "type": ServiceRequestEscalated.event_type,
        "schema_version": 1,
        "topic": INTAKE,
        "data": ServiceRequestEscalated(request_id="old-1", reason="before actors").model_dump_json(),
        "occurred_at": NOW,
        "recorded_at": NOW,
        "correlation_id": "c",
        "causation_id": "c",
        "traceparent": None,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(events).values(**legacy))  # the columns of shared_0002: no actor
    await engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "heads")

    db = Database(database_url)
    try:
        store = EventStore("intake")
        async with db.read() as conn:
            history, actors = await store.load_with_actors(conn, "old-1")
            (envelope,) = await store.read_all(conn)
        assert [data.reason for data, _ in history] == ["before actors"]
        assert actors == [UNKNOWN_ACTOR] and envelope.actor == UNKNOWN_ACTOR
        with pytest.raises(IntegrityError):
            async with db.transaction() as conn:
                await conn.execute(insert(events), [{**legacy, "event_id": str(uuid.uuid4()), "version": 2}])
    finally:
        await db.dispose()


# --- on Kafka ----------------------------------------------------------------------------------------------------


async def test_the_relay_publishes_the_actor_as_ce_actor_and_a_consumer_reads_it_back(db, event_bus):
    stream = f"actor-{uuid.uuid4()}"
    store = EventStore("relay-actor-test")
    tricky = ActorId.user("clerk;7%", "D1")
    for version, actor in enumerate([tricky, ActorId.system("dispatch")]):
        async with db.transaction() as conn:
            await append_escalations(conn, store, stream, [str(version)], expected_version=version, actor=actor)
    relay = OutboxRelay(
        db,
        lambda: reliable_producer(event_bus, "relay-actor-test"),
        source="relay-actor-test",
        poll_interval=0.05,
    )
    task = asyncio.create_task(relay.run())
    try:

        async def due() -> int:
            async with db.read() as conn:
                return len((await conn.execute(select(outbox.c.position))).all())

        await eventually(due, until=lambda n: n == 0)
    finally:
        await relay.stop()
        await task
    records = await collect(event_bus, INTAKE, lambda r: r.key == stream.encode(), expected=2)
    assert [headers_of(r)["ce_actor"] for r in records] == ["user:clerk%3B7%25;dealer=D1", "system:dispatch"]
    read_back = [from_record(r.topic, r.key, r.value, r.headers).actor for r in records]
    assert [ActorId.parse(a) for a in read_back] == [tricky, ActorId.system("dispatch")]
