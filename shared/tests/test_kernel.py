"""The application kernel: handler tables checked at start-up, a unit of work that appends, projects and
reconciles deadlines for every aggregate it loaded, and `Application.handle` owning the transaction and the
409s, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Actor, Principal, Role
from shared.clock import FixedClock
from shared.contracts.base import EventData, Registry
from shared.contracts.intake import ServiceRequestCancelled
from shared.contracts.warranty import WarrantyChecked
from shared.domain import Aggregate, NotFound, TimeRules
from shared.events import EventEnvelope, IncomingEvent
from shared.eventstore.database import Database
from shared.eventstore.lean import Prepared, write
from shared.eventstore.store import ConcurrencyError, EventStore, new_metadata
from shared.eventstore.tables import events, outbox, service_schema
from shared.kernel import Application, HandlerMismatch, Kernel, Projections, UnitOfWork
from shared.scheduling import deadlines
from shared.tests.conftest import database_with

NOW = datetime.fromisoformat("2026-03-02T09:00:00+00:00")


class CounterStarted(EventData):
    event_type: ClassVar[str] = "test_counter.started"
    version: ClassVar[int] = 1
    topic: ClassVar[str] = "test"
    subject_field: ClassVar[str] = "counter_id"
    counter_id: str
    dealer_id: str | None = None


class CounterIncreased(EventData):
    event_type: ClassVar[str] = "test_counter.increased"
    version: ClassVar[int] = 1
    topic: ClassVar[str] = "test"
    subject_field: ClassVar[str] = "counter_id"
    counter_id: str


REGISTRY = Registry()
REGISTRY.register(CounterStarted)
REGISTRY.register(CounterIncreased)


@dataclass
class Counter(Aggregate):
    """A counter that must be looked at within an hour of each increase while below three."""

    stream_type: ClassVar[str] = "test_counter"
    value: int = 0
    dealer_id: str | None = None
    increased_at: datetime | None = None

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        if isinstance(data, CounterStarted):
            self.dealer_id = data.dealer_id
        else:
            self.value += 1
            self.increased_at = occurred_at

    def due_deadlines(self) -> Mapping[str, datetime]:
        if self.increased_at is None or self.value >= 3:
            return {}
        return {"look": self.increased_at + timedelta(hours=1)}


own = MetaData()
counters = Table(
    "test_counters",
    own,
    Column("counter_id", String(40), primary_key=True),
    Column("value", Integer, nullable=False),
    Column("first_position", Integer),
)


async def project(conn: AsyncConnection, counter: Counter, stored: Sequence[EventEnvelope]) -> None:
    if stored[0].sequence == 1:
        await conn.execute(
            counters.insert().values(counter_id=counter.id, value=counter.value, first_position=stored[0].position)
        )
    else:
        await conn.execute(counters.update().where(counters.c.counter_id == counter.id).values(value=counter.value))


@dataclass(frozen=True)
class Start:
    counter_id: str
    dealer_id: str | None = None


@dataclass(frozen=True)
class Increase:
    counter_ids: tuple[str, ...]
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Step:
    """How far an increase may go: a dependency the handler gets by its type."""

    size: int


async def start(command: Start, actor: Actor, uow: UnitOfWork) -> str:
    counter = uow.add(Counter(id=command.counter_id))
    counter.record(CounterStarted(counter_id=counter.id, dealer_id=command.dealer_id), uow.step_time(None))
    return counter.id


async def increase(command: Increase, actor: Actor, uow: UnitOfWork, step: Step) -> int:
    total = 0
    for counter_id in command.counter_ids:
        counter = await uow.get_visible(Counter, counter_id, actor)
        for _ in range(step.size):
            counter.record(CounterIncreased(counter_id=counter_id), uow.step_time(command.occurred_at, counter))
        total += counter.value
    return total


def kernel(db: Database, **overrides: object) -> Kernel[object]:
    projections = Projections()
    projections.register(Counter, project, counters)
    values: dict[str, object] = dict(
        db=db,
        store=EventStore("test", registry=REGISTRY),
        clock=FixedClock(NOW),
        time_rules=TimeRules(),
        projections=projections,
        commands={Start: start, Increase: increase},
        provided={Step: Step(1)},
    )
    values.update(overrides)
    return Kernel(**values)  # type: ignore[arg-type]


STAFF = Actor("agent-1", frozenset({Role.agent}))


@pytest.fixture
async def db(database_url: str):
    async with database_with(database_url, service_schema(own)) as database:
        yield database


async def pending_deadlines(db: Database) -> dict[str, datetime]:
    async with db.read() as conn:
        rows = (await conn.execute(select(deadlines).where(deadlines.c.state == "pending"))).all()
    return {row.stream_id: row.due_at for row in rows}


async def test_a_command_appends_projects_and_schedules_for_every_aggregate_it_loaded(db):
    app = Application(kernel(db))
    for counter_id in ("a", "b"):
        await app.handle(Start(counter_id), STAFF, new_metadata())
    meta = new_metadata("corr-1")
    assert await app.handle(Increase(("a", "b")), STAFF, meta) == 2
    async with db.read() as conn:
        values = dict((await conn.execute(select(counters.c.counter_id, counters.c.value))).all())
        chained = (await conn.execute(select(events.c.correlation_id).where(events.c.version == 2))).scalars().all()
    assert values == {"a": 1, "b": 1}
    assert chained == ["corr-1", "corr-1"]
    assert await pending_deadlines(db) == {"a": NOW + timedelta(hours=1), "b": NOW + timedelta(hours=1)}


async def test_deadlines_follow_the_aggregate_moved_then_cancelled_when_no_longer_due(db):
    clock = FixedClock(NOW)
    app = Application(kernel(db, clock=clock))
    await app.handle(Start("a"), STAFF, new_metadata())
    clock.advance(minutes=30)
    await app.handle(Increase(("a",)), STAFF, new_metadata())
    assert await pending_deadlines(db) == {"a": NOW + timedelta(minutes=90)}
    clock.advance(minutes=30)
    await app.handle(Increase(("a",)), STAFF, new_metadata())
    assert await pending_deadlines(db) == {"a": NOW + timedelta(minutes=120)}
    await app.handle(Increase(("a",)), STAFF, new_metadata())
    assert await pending_deadlines(db) == {}


async def test_a_command_that_loses_the_race_for_its_stream_is_a_conflict_and_leaves_nothing_behind(db):
    app = Application(kernel(db))
    await app.handle(Start("a"), STAFF, new_metadata())
    with pytest.raises(ConcurrencyError):  # the stream exists: the second start loses (a 409 at the edge)
        await app.handle(Start("a"), STAFF, new_metadata())
    async with db.read() as conn:
        assert len((await conn.execute(select(events.c.event_id))).all()) == 1


async def test_a_dealer_gets_404_for_another_dealers_aggregate(db):
    app = Application(kernel(db))
    await app.handle(Start("a", dealer_id="D1"), STAFF, new_metadata())
    other = Actor.of(Principal("d2", frozenset({Role.dealer, Role.agent}), dealer_id="D2"))
    with pytest.raises(NotFound):
        await app.handle(Increase(("a",)), other, new_metadata())
    own_dealer = Actor.of(Principal("d1", frozenset({Role.dealer, Role.technician}), dealer_id="D1"))
    assert await app.handle(Increase(("a",)), own_dealer, new_metadata()) == 1


async def test_the_rebuild_projects_every_stream_afresh(db):
    app = Application(kernel(db))
    for counter_id in ("a", "b"):
        await app.handle(Start(counter_id), STAFF, new_metadata())
    await app.handle(Increase(("b",)), STAFF, new_metadata())
    async with db.read() as conn:
        live = sorted((await conn.execute(select(counters))).all())
    assert await app.rebuild() == {"test_counter": 2}
    async with db.read() as conn:
        assert sorted((await conn.execute(select(counters))).all()) == live


async def increase_on_cancelled(event: IncomingEvent[ServiceRequestCancelled], uow: UnitOfWork) -> None:
    """A reaction: a cancelled request increases the counter of the same id."""
    counter = await uow.get(Counter, event.data.request_id)
    counter.record(CounterIncreased(counter_id=counter.id), event.time)


async def counter_a_counting_cancellations(db) -> Application:
    """An application whose counter "a" (started by STAFF) is increased by each cancellation of request "a"."""
    app = Application(kernel(db, reactions={ServiceRequestCancelled: increase_on_cancelled}))
    await app.handle(Start("a"), STAFF, new_metadata())
    return app


async def test_a_reaction_runs_in_a_unit_of_work_chained_to_its_cause(db):
    app = await counter_a_counting_cancellations(db)
    cause = ServiceRequestCancelled(request_id="a", reason="r")
    envelope = EventEnvelope(
        id="cause-1",
        source="intake",
        type=cause.event_type,
        subject="a",
        time=NOW,
        dataschema=cause.dataschema(),
        sequence=3,
        recordedat=NOW,
        correlationid="corr-9",
        causationid="x",
        data=cause.model_dump_json(),
        topic=cause.topic,
    )
    handler = app.handler_table()[ServiceRequestCancelled.event_type]
    async with db.transaction() as conn:
        await handler(IncomingEvent(envelope, cause), conn)
    async with db.read() as conn:
        row = (await conn.execute(select(events).where(events.c.version == 2))).one()
    assert (row.correlation_id, row.causation_id, row.occurred_at) == ("corr-9", "cause-1", NOW)


def test_a_command_handler_annotated_for_another_command_fails_at_start_up(db):
    with pytest.raises(HandlerMismatch, match="registered for Start"):
        Application(kernel(db, commands={Start: increase}))


def test_a_reaction_annotated_for_another_event_fails_at_start_up(db):
    async def on_checked(event: IncomingEvent[WarrantyChecked], uow: UnitOfWork) -> None: ...

    with pytest.raises(HandlerMismatch, match="IncomingEvent"):
        Application(kernel(db, reactions={ServiceRequestCancelled: on_checked}))


def test_a_handler_needing_a_dependency_nobody_provides_fails_at_start_up(db):
    with pytest.raises(HandlerMismatch, match="step"):
        Application(kernel(db, provided={}))


def test_one_scope_rule_a_dealer_stays_confined_and_staff_lift_a_technicians_confinement():
    dealer_tech = Actor.of(Principal("t1", frozenset({Role.dealer, Role.technician}), dealer_id="D1"))
    assert dealer_tech.sees("D1", "someone-else") and not dealer_tech.sees("D2", "t1")
    technician = Actor.of(Principal("t1", frozenset({Role.technician})))
    assert technician.sees(None, "t1") and not technician.sees(None, "t2")
    dispatcher_tech = Actor.of(Principal("t1", frozenset({Role.technician, Role.dispatcher})))
    assert dispatcher_tech.technician_scope is None and dispatcher_tech.sees("D9", "t2")
    admin_dealer = Actor.of(Principal("x", frozenset({Role.dealer, Role.admin}), dealer_id="D1"))
    assert admin_dealer.dealer_scope is None


INSERT_COUNTER = Prepared(counters.insert(), columns=["counter_id", "value", "first_position"])
UPDATE_COUNTER = Prepared(
    counters.update().where(counters.c.counter_id == bindparam("id")).values(value=bindparam("new_value"))
)


def counter_writes(counter: Counter, stored: Sequence[EventEnvelope]) -> list[tuple[Prepared, dict[str, object]]]:
    """`project`'s statements as a pure function; a counter named `clash-<id>` claims the row of `<id>`."""
    row_id = counter.id.removeprefix("clash-")
    if stored[0].sequence == 1:
        return [(INSERT_COUNTER, {"counter_id": row_id, "value": counter.value, "first_position": stored[0].position})]
    return [(UPDATE_COUNTER, {"id": row_id, "new_value": counter.value})]


def kernel_with_writes(db: Database, projector_calls: list[str]) -> Kernel[object]:
    async def projector(conn: AsyncConnection, counter: Counter, stored: Sequence[EventEnvelope]) -> None:
        projector_calls.append(counter.id)
        await write(conn, counter_writes(counter, stored))

    projections = Projections()
    projections.register(Counter, projector, counters, writes=counter_writes)
    return kernel(db, projections=projections)


async def test_a_projection_that_declares_its_writes_is_stored_in_the_appends_trip_on_sqlite(db):
    calls: list[str] = []
    app = Application(kernel_with_writes(db, calls))
    await app.handle(Start("a"), STAFF, new_metadata())
    await app.handle(Increase(("a",)), STAFF, new_metadata())
    async with db.read() as conn:
        row = (await conn.execute(select(counters))).one()
        first = (await conn.execute(select(events.c.position).where(events.c.version == 1))).scalar_one()
    assert (row.counter_id, row.value, row.first_position) == ("a", 1, first)
    # On SQLite the writes ran on the writer with the append (the async projector was not needed); elsewhere the
    # projector ran as it is.
    assert calls == ([] if db.is_sqlite else ["a", "a"])
    assert await pending_deadlines(db) == {"a": NOW + timedelta(hours=1)}


async def test_a_projection_write_that_breaks_a_key_is_a_409_and_leaves_no_event_and_no_outbox_row(db):
    app = Application(kernel_with_writes(db, []))
    await app.handle(Start("a"), STAFF, new_metadata())
    with pytest.raises(ConcurrencyError):  # IntegrityError of the projection: the generic 409
        await app.handle(Start("clash-a"), STAFF, new_metadata())
    async with db.read() as conn:
        streams = (await conn.execute(select(events.c.stream_id))).scalars().all()
        due = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        values = (await conn.execute(select(counters.c.counter_id, counters.c.value))).all()
    assert streams == ["a"] and due == 1 and [tuple(v) for v in values] == [("a", 0)]
