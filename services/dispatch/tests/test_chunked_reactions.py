"""dispatch's reactions applied a consumer chunk at a time (the chunk's requests, jobs and candidates read once,
kept up to date by the chunk's own writes) decide exactly as one event at a time: the same technician, the same
SLA deadlines, the same open-job counts; and a poison event in the middle of a chunk goes to the DLQ alone,
its write undone, while the others of its transaction are assigned once."""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select

from services.dispatch.app import dispatch_application
from services.dispatch.chunk_reads import kept_reads
from services.dispatch.commands import RegisterServiceCenter, RegisterTechnician
from services.dispatch.domain import job_id_for
from services.dispatch.read_model import dispatch_jobs, dispatch_technician_load, metadata
from services.dispatch.sla import SlaPolicy
from services.dispatch.tests.conftest import BACKENDS, cancelled_event, database_url_for, request_events
from shared.auth import Actor, Principal, Role
from shared.clock import SystemClock
from shared.contracts.dispatch import CenterKind
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.intake import ClearedBy, ServiceRequestClearedForDispatch, ServiceRequestTriaged
from shared.contracts.topics import INTAKE, dlq_for
from shared.domain import TimeRules
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore, new_metadata
from shared.eventstore.tables import events, outbox, processed_events, service_schema
from shared.kernel import Application
from shared.messaging.cloudevents import to_record
from shared.messaging.consumer import IdempotentConsumer
from shared.messaging.kafka import reliable_producer
from shared.scheduling import deadlines
from shared.settings import ServiceSettings
from shared.testing.kafka import collect, envelope_for, headers_of, subject_is

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def dispatch_service(url: str) -> tuple[Database, Application[Any]]:
    """dispatch's application over a fresh database: centers in north (one of dealer D1) and south; T1, T2 at
    D1's center, T3 (tractors and combines) and T5 (inactive) at the independent one, T4 in the south."""
    db = Database(url, sqlite_synchronous="NORMAL")
    await db.create_all(service_schema(metadata))
    settings = ServiceSettings(service_name="dispatch", database_url=url, auth_secret="x" * 40)
    application = dispatch_application(
        db=db,
        store=EventStore("dispatch"),
        clock=SystemClock(),
        time_rules=TimeRules.from_settings(settings),
        sla=SlaPolicy(),
    )
    actor = Actor.of(Principal(subject="dispatcher", roles=frozenset({Role.dispatcher})))
    for command in (
        RegisterServiceCenter("C1", "Dealer center", "north", CenterKind.repair_center, "D1"),
        RegisterServiceCenter("C2", "Independent center", "north", CenterKind.repair_center),
        RegisterServiceCenter("C3", "Southern center", "south", CenterKind.repair_center),
        RegisterTechnician("T1", "C1", "Tech 1", ["tractor"]),
        RegisterTechnician("T2", "C1", "Tech 2", ["tractor"]),
        RegisterTechnician("T3", "C2", "Tech 3", ["tractor", "combine"]),
        RegisterTechnician("T4", "C3", "Tech 4", ["tractor"]),
        RegisterTechnician("T5", "C2", "Tech 5", ["tractor", "combine"], active=False),
    ):
        await application.handle(command, actor, new_metadata())
    return db, application


def consumer_of(db: Database, application: Application[Any], event_bus: str, chunk: int) -> IdempotentConsumer:
    return IdempotentConsumer(
        db=db,
        name="dispatch",
        topics=[INTAKE],
        handlers=application.handler_table(),
        consumer_factory=lambda: None,  # type: ignore[arg-type, return-value]  # records are handed over directly
        producer_factory=lambda: reliable_producer(event_bus, "dispatch-test-dlq"),
        transaction_size=chunk,
    )


def as_records(envelopes: list[EventEnvelope]) -> list[ConsumerRecord]:
    """One partition's records, in order, as a poll hands them over."""
    records = []
    for offset, envelope in enumerate(envelopes):
        topic, key, value, headers = to_record(envelope)
        records.append(ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers))
    return records


def intake_stream() -> tuple[list[EventEnvelope], str, set[str]]:
    """A partition's worth of intake's events exercising what a chunk's reads must follow: requests received
    well before their triage and right before it, two regions and product lines, a dealer's own center, triages
    that change who is least loaded, a cancellation that frees a technician mid-chunk and one before
    its triage, a fact delivered twice
    and stated twice, a held triage cleared later, a phone triage, and a triage whose request dispatch never
    received (the poison, in the middle). Returns the events, the poison's request id and the requests that
    get a job."""
    stream: list[EventEnvelope] = []
    with_jobs: set[str] = set()
    at = START

    def later() -> datetime:
        nonlocal at
        at += timedelta(minutes=1)
        return at

    def request(job: bool = True, **fields: Any) -> tuple[EventEnvelope, EventEnvelope]:
        received_at = later()
        pair = request_events(received_at=received_at, triaged_at=received_at + timedelta(minutes=5), **fields)
        if job:
            with_jobs.add(pair[0].subject)
        return pair

    early = [request(dealer_id="D1" if i % 3 == 0 else None) for i in range(6)]
    stream += [received for received, _ in early] + [triaged for _, triaged in early]
    for i in range(4):
        received, triaged = request(dealer_id="D1" if i % 2 else "D9", priority=Priority.P1 if i == 1 else Priority.P3)
        stream += [received, triaged]
    cancelled_one = early[1][0].subject
    stream.append(cancelled_event(cancelled_one, at=later()))  # its technician has one job fewer from here
    received, triaged = request(job=False)  # withdrawn before its triage: no job
    stream += [received, cancelled_event(received.subject, at=later()), triaged]
    stream += list(request(region="south"))
    stream += list(request(product_line="combine"))
    stream += list(request(region="west"))  # nobody there: unassigned
    received, triaged = request()
    stream += [received, triaged, received]  # the same event delivered twice
    stream.append(replace(received, id=str(uuid.uuid4())))  # the same fact stated twice
    stream.append(replace(triaged, id=str(uuid.uuid4())))  # a job exists already
    poison = str(uuid.uuid4())
    stream.append(
        envelope_for(
            ServiceRequestTriaged(request_id=poison, mode=ServiceMode.onsite, priority=Priority.P2),
            source="intake",
            time=later(),
            sequence=2,
        )
    )
    received, _ = request()  # its job comes with `cleared_for_dispatch`, at the end
    held = ServiceRequestTriaged(
        request_id=received.subject, mode=ServiceMode.onsite, priority=Priority.P2, dispatch_held=True
    )
    stream += [received, envelope_for(held, source="intake", time=later(), sequence=2)]
    stream += list(request(job=False, mode=ServiceMode.phone))
    stream.append(request(job=False)[0])  # received only: triaged some other day
    for i in range(8):
        stream += list(request(dealer_id="D1" if i % 4 == 0 else None))
    cleared = ServiceRequestClearedForDispatch(
        request_id=held.request_id,
        mode=ServiceMode.onsite,
        priority=Priority.P2,
        arrive_sla_from=later(),
        cleared_by=ClearedBy.coverage,
    )
    stream.append(envelope_for(cleared, source="intake", time=later(), sequence=3))
    stream.append(cancelled_event(early[4][0].subject, at=later()))
    return stream, poison, with_jobs


async def outcome(db: Database) -> dict[str, Any]:
    """Everything a decision shows in: each job's row (technician, status, SLA, history), its events, its
    deadlines, and every technician's open jobs as kept and as counted."""
    async with db.read() as conn:
        jobs = {
            row.request_id: (row.status, row.technician_id, row.is_load, _decided(json.loads(row.view)))
            for row in await conn.execute(select(dispatch_jobs))
        }
        streams = sorted(
            tuple(row)
            for row in await conn.execute(
                select(events.c.stream_id, events.c.type, events.c.data, events.c.occurred_at).where(
                    events.c.stream_type == "job"
                )
            )
        )
        due = sorted(
            tuple(row) for row in await conn.execute(select(deadlines.c.name, deadlines.c.due_at, deadlines.c.state))
        )
        load = dict(tuple(row) for row in await conn.execute(select(dispatch_technician_load)))
        published = sorted(
            tuple(row)
            for row in await conn.execute(
                select(events.c.stream_id, events.c.type)
                .join(outbox, outbox.c.position == events.c.position)
                .where(events.c.stream_type == "job")
            )
        )
        counted = dict(
            tuple(row)
            for row in await conn.execute(
                select(dispatch_jobs.c.technician_id, func.count())
                .where(dispatch_jobs.c.is_load.is_(True))
                .group_by(dispatch_jobs.c.technician_id)
            )
        )
    return {"jobs": jobs, "events": streams, "outbox": published, "deadlines": due, "load": load, "counted": counted}


def _decided(view: dict[str, Any]) -> dict[str, Any]:
    return {key: view[key] for key in ("technician_id", "center_id", "accept_due", "arrive_due", "sla", "history")}


def spy_on_chunk_reads(application: Application[Any]) -> tuple[dict[str, Any], list[bool]]:
    """The handler table, with a note per triage of whether it ran on reads kept for its chunk."""
    handlers = application.handler_table()
    used: list[bool] = []
    triaged = handlers[ServiceRequestTriaged.event_type]

    async def noting(event: Any, conn: Any) -> None:
        await triaged(event, conn)
        if event.data.mode != ServiceMode.phone and not event.data.dispatch_held:
            used.append(kept_reads() is not None)

    handlers[ServiceRequestTriaged.event_type] = noting
    return handlers, used


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk", [100, 7])
async def test_a_chunk_of_triages_decides_as_one_event_at_a_time_does(request, tmp_path, event_bus, backend, chunk):
    stream, poison, with_jobs = intake_stream()
    records = as_records(stream)
    results = []
    for one_at_a_time in (True, False):
        directory = tmp_path / ("single" if one_at_a_time else "chunked")
        directory.mkdir()
        db, application = await dispatch_service(await database_url_for(request, directory, backend))
        consumer = consumer_of(db, application, event_bus, chunk)
        consumer.handlers, used = spy_on_chunk_reads(application)
        try:
            if one_at_a_time:
                outcomes = [await consumer.handle_record(record) for record in records]
                assert outcomes.count("dlq") == 1 and outcomes.count("duplicate") == 1
            else:
                assert await consumer.handle_records(records) == len(records)
            assert consumer.counts["dlq"] == 1 and consumer.counts["duplicate"] == 1
            assert used and (not any(used) if one_at_a_time else all(used)), "chunked: triages ran on the chunk's reads"
            results.append(await outcome(db))
        finally:
            await db.dispose()
            if consumer._dlq_producer is not None:
                await consumer._dlq_producer.stop()
    single, chunked = results
    assert chunked == single
    jobs = single["jobs"]
    assert set(jobs) == with_jobs and poison not in jobs
    assert {technician for _, technician, _, _ in jobs.values()} == {"T1", "T2", "T3", "T4", None}
    assert single["load"] == single["counted"], "the kept open-job counts are the jobs' own"
    assert [(stream, kind) for stream, kind, _, _ in single["events"]] == single["outbox"], "each event published"


async def test_a_poison_triage_in_a_chunk_goes_to_the_dlq_alone_and_the_others_are_assigned_once(tmp_path, event_bus):
    url = f"sqlite+aiosqlite:///{tmp_path}/dispatch.db"
    db, application = await dispatch_service(url)
    consumer = consumer_of(db, application, event_bus, chunk=100)
    pairs = [request_events(received_at=START + timedelta(minutes=i)) for i in range(20)]
    poison = envelope_for(
        ServiceRequestTriaged(
            request_id=f"never-received-{uuid.uuid4().hex[:8]}", mode=ServiceMode.onsite, priority=Priority.P3
        ),
        source="intake",
        time=START,
        sequence=2,
    )
    stream = (
        [event for pair in pairs[:10] for event in pair] + [poison] + [event for pair in pairs[10:] for event in pair]
    )
    try:
        assert await consumer.handle_records(as_records(stream)) == len(stream)
        assert consumer.counts == {"applied": 40, "duplicate": 0, "ignored": 0, "dlq": 1}
        [dead] = await collect(event_bus, dlq_for(INTAKE), subject_is(poison.subject), expected=1)
        assert "never reached dispatch" in headers_of(dead)["dlq_reason"]
        after = await outcome(db)
        assert set(after["jobs"]) == {received.subject for received, _ in pairs}
        assert all(technician is not None for _, technician, _, _ in after["jobs"].values())
        assert [row[1] for row in after["events"]].count("job.created") == 20, "each request's job created once"
        assert after["load"] == after["counted"] and sum(after["load"].values()) == 20
        async with db.read() as conn:
            claimed = set((await conn.execute(select(processed_events.c.event_id))).scalars())
        assert poison.id not in claimed, "the poison's claim was undone with its savepoint"
        assert {event.id for event in stream} - claimed == {poison.id}

        # Delivered again (a restart before the offsets were committed): nothing applies twice.
        await consumer.handle_records(as_records(stream))
        assert consumer.counts == {"applied": 40, "duplicate": 40, "ignored": 0, "dlq": 2}
        assert await outcome(db) == after
    finally:
        await db.dispose()
        if consumer._dlq_producer is not None:
            await consumer._dlq_producer.stop()


async def test_a_triage_whose_writes_fail_in_a_later_trip_goes_to_the_dlq_alone_and_the_others_are_assigned_once(
    tmp_path, event_bus
):
    # In a chunk a new job's events, deadlines and row ride with the next trip to the writer, whichever event's it
    # is. Should the database refuse them there, the chunk fails and is retried record by record: only the
    # triage whose writes cannot be stored reaches the DLQ, none of its rows is left, and no other event is lost.
    url = f"sqlite+aiosqlite:///{tmp_path}/dispatch.db"
    db, application = await dispatch_service(url)
    pairs = [request_events(received_at=START + timedelta(minutes=i)) for i in range(12)]
    refused = pairs[5][0].subject
    with sqlite3.connect(str(db.url.database)) as raw:
        raw.execute(
            "CREATE TRIGGER refuse_one_jobs_deadlines BEFORE INSERT ON deadlines "
            f"WHEN NEW.stream_id = '{job_id_for(refused)}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    consumer = consumer_of(db, application, event_bus, chunk=100)
    consumer.handler_attempts = 2
    stream = [event for pair in pairs for event in pair]
    try:
        assert await consumer.handle_records(as_records(stream)) == len(stream)
        assert consumer.counts == {"applied": 23, "duplicate": 0, "ignored": 0, "dlq": 1}
        [dead] = await collect(event_bus, dlq_for(INTAKE), subject_is(refused), expected=1)
        assert headers_of(dead)["dlq_reason"].startswith("handler failed: IntegrityError")
        after = await outcome(db)
        assert set(after["jobs"]) == {received.subject for received, _ in pairs} - {refused}
        assert all(technician is not None for _, technician, _, _ in after["jobs"].values())
        assert not [row for row in after["events"] if row[0] == job_id_for(refused)], "nothing of it is left"
        assert [row[1] for row in after["events"]].count("job.created") == 11, "each other job created once"
        assert len(after["outbox"]) == len(after["events"]) == 22
        assert after["load"] == after["counted"] and sum(after["load"].values()) == 11
        async with db.read() as conn:
            claimed = set((await conn.execute(select(processed_events.c.event_id))).scalars())
        assert {event.id for event in stream} - claimed == {pairs[5][1].id}
    finally:
        await db.dispose()
        if consumer._dlq_producer is not None:
            await consumer._dlq_producer.stop()
