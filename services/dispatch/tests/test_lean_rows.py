"""dispatch's hot writes and reads on the lean path (shared/eventstore/lean.py): the rows they store are the
rows SQLAlchemy stored before, byte for byte, what they read back is what SQLAlchemy reads, and ranking the
candidates finds every row by a key or an index, whatever the number of jobs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update

from services.dispatch.app import dispatch_application
from services.dispatch.domain import LOAD_STATUSES, Assignee, Job, RequestFacts
from services.dispatch.queries import _CANDIDATES_OF_REQUEST, chunk_reads, known_request, remember_request
from services.dispatch.read_model import (
    append_new_job_later,
    dispatch_jobs,
    dispatch_requests,
    job_view,
    metadata,
    queue_key,
    save_job,
)
from services.dispatch.sla import SlaPolicy
from services.dispatch.tests.conftest import request_events
from shared.clock import SystemClock
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.intake import ServiceRequestReceived
from shared.domain import TimeRules
from shared.events import IncomingEvent
from shared.eventstore import Database
from shared.eventstore.lean import lean_driver
from shared.eventstore.store import EventStore, Metadata
from shared.eventstore.tables import events, service_schema
from shared.messaging.consumer import _CURRENT_CHUNK, Chunk, _flush_deferred_writes

RECEIVED_AT = datetime(2026, 11, 30, 8, 15, 42, 123456, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/dispatch.db")
    await database.create_all(service_schema(metadata))
    yield database
    await database.dispose()


def rows_of(db: Database, table: str, key: str) -> list[tuple]:
    with sqlite3.connect(str(db.url.database)) as raw:
        return raw.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()  # noqa: S608 (the test's own names)


def sqlalchemy_job_row(job: Job, created_position: int) -> dict:
    """The row as save_job built it for SQLAlchemy before the lean path."""
    import json

    return {
        "status": str(job.status),
        "dealer_id": job.dealer_id,
        "technician_id": job.technician_id,
        "is_load": job.technician_id is not None and job.status in LOAD_STATUSES,
        "queue_key": queue_key(job, created_position),
        "version": job.version,
        "view": json.dumps(job_view(job), ensure_ascii=False),
    }


async def test_a_remembered_request_is_stored_as_sqlalchemy_stored_it_and_reads_back_the_same(db):
    received, _ = request_events(dealer_id="D1", received_at=RECEIVED_AT)
    data = ServiceRequestReceived.model_validate_json(received.data)
    async with db.transaction() as conn:
        assert lean_driver(conn) is not None  # the writes below take the lean path
        await remember_request(conn, data, RECEIVED_AT)
        await remember_request(conn, data, RECEIVED_AT)  # the same fact again changes nothing
        lean_read = await known_request(conn, received.subject)
        await conn.execute(
            insert(dispatch_requests).values(
                request_id="by-sqlalchemy",
                dealer_id=data.dealer_id,
                region=data.customer.region,
                product_line=data.product.product_line,
                customer_tier=str(data.customer_tier),
                urgent=data.urgent,
                received_at=RECEIVED_AT,
                cancelled=False,
            )
        )
    async with db.read() as conn:
        sqlalchemy_read = await known_request(conn, received.subject)  # outside a transaction: SQLAlchemy's path
    lean_row, sqlalchemy_row = sorted(
        rows_of(db, "dispatch_requests", "request_id"), key=lambda r: r[0] != received.subject
    )
    assert lean_row[1:] == sqlalchemy_row[1:]
    assert lean_read == sqlalchemy_read
    assert lean_read is not None and lean_read.facts.received_at == RECEIVED_AT


async def test_a_jobs_row_is_stored_and_updated_as_sqlalchemy_did(db):
    facts = RequestFacts("R-1", "D1", "north", "tractor", RECEIVED_AT)
    at = RECEIVED_AT + timedelta(minutes=10)
    job = Job.create(
        facts, ServiceMode.onsite, Priority.P2, SlaPolicy(), at, Assignee("T1", "C1", True, frozenset({"tractor"}))
    )
    twin = Job.create(
        RequestFacts("R-2", "D1", "north", "tractor", RECEIVED_AT),
        ServiceMode.onsite,
        Priority.P2,
        SlaPolicy(),
        at,
        Assignee("T1", "C1", True, frozenset({"tractor"})),
    )
    async with db.transaction() as conn:
        await save_job(conn, job, 7)
        await conn.execute(
            insert(dispatch_jobs).values(
                job_id=twin.id, request_id=twin.request_id, created_position=8, **sqlalchemy_job_row(twin, 8)
            )
        )
    inserted = rows_of(db, "dispatch_jobs", "created_position")

    for one in (job, twin):
        one.accept("T1", at + timedelta(minutes=5))
        one.take_pending()
    async with db.transaction() as conn:
        await save_job(conn, job, None)
        await conn.execute(
            update(dispatch_jobs).where(dispatch_jobs.c.job_id == twin.id).values(**sqlalchemy_job_row(twin, 8))
        )
    updated = rows_of(db, "dispatch_jobs", "created_position")

    for lean_row, sqlalchemy_row in (inserted, updated):
        # job_id, created_position, request_id and the view (which names them) differ; all else is the same bytes
        differing = [c.key for c, a, b in zip(dispatch_jobs.c, lean_row, sqlalchemy_row, strict=True) if a != b]
        assert differing == ["job_id", "created_position", "request_id", "queue_key", "view"]
        assert lean_row[-1] == sqlalchemy_row[-1].replace(twin.id, job.id).replace("R-2", "R-1")
    assert updated[0][3] == "accepted" and updated[0] != inserted[0]


@contextmanager
def in_a_consumer_chunk(*events: IncomingEvent) -> Iterator[None]:
    """What the consumer sets while it applies a chunk of `events` (`current_chunk()`)."""
    entered = _CURRENT_CHUNK.set(Chunk(list(events)))
    try:
        yield
    finally:
        _CURRENT_CHUNK.reset(entered)


async def test_a_chunks_request_and_new_job_rows_left_for_the_next_trip_are_stored_as_outside_a_chunk(db):
    received, _ = request_events(dealer_id="D1", received_at=RECEIVED_AT, request_id="R-1")
    twin_received, _ = request_events(dealer_id="D1", received_at=RECEIVED_AT, request_id="R-2")
    data, twin_data = (ServiceRequestReceived.model_validate_json(e.data) for e in (received, twin_received))
    facts = RequestFacts("R-1", "D1", "north", "tractor", RECEIVED_AT)
    at = RECEIVED_AT + timedelta(minutes=10)
    job, twin = (
        Job.create(
            replace_request(facts, request_id),
            ServiceMode.onsite,
            Priority.P2,
            SlaPolicy(),
            at,
            Assignee("T1", "C1", True, frozenset({"tractor"})),
        )
        for request_id in ("R-1", "R-2")
    )
    async with db.transaction() as conn:
        await remember_request(conn, twin_data, RECEIVED_AT)  # outside a chunk: written at once
        await save_job(conn, twin, 8)
        with in_a_consumer_chunk(IncomingEvent(received, data)):
            reads = await chunk_reads(conn)
            assert reads is not None and reads.later is not None  # the chunk's writes take the deferred path
            await remember_request(conn, data, RECEIVED_AT)
            await save_job(conn, job, 7)
            driver = lean_driver(conn)
            assert driver is not None and driver.has_deferred_writes()
            await _flush_deferred_writes(conn)
            assert reads.candidate_of == {}  # no candidates were read; the saved job's load is in the table

    chunk_request, outside_request = rows_of(db, "dispatch_requests", "request_id")
    assert chunk_request[1:] == outside_request[1:]
    chunk_job, outside_job = rows_of(db, "dispatch_jobs", "created_position")
    differing = [c.key for c, a, b in zip(dispatch_jobs.c, chunk_job, outside_job, strict=True) if a != b]
    assert differing == ["job_id", "created_position", "request_id", "queue_key", "view"]
    assert chunk_job[-1] == outside_job[-1].replace(twin.id, job.id).replace("R-2", "R-1")
    assert rows_of(db, "dispatch_technician_load", "technician_id") == [("T1", 2)]


def replace_request(facts: RequestFacts, request_id: str) -> RequestFacts:
    return RequestFacts(request_id, facts.dealer_id, facts.region, facts.product_line, facts.received_at)


async def test_ranking_the_candidates_finds_every_row_by_a_key_or_an_index(db):
    async with db.read() as conn:
        compiled = _CANDIDATES_OF_REQUEST.compiled(conn.dialect)
        plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.sql}", ("R-1", 1))).all()
    steps = [str(step[-1]) for step in plan]
    assert len(steps) == 5, steps  # the request, the region's centers, their technicians, a skill, a load row
    assert not [step for step in steps if step.startswith("SCAN")], steps
    assert not [step for step in steps if "dispatch_jobs" in step], "the open jobs are read, not counted"


async def test_a_chunks_new_job_left_for_the_next_trip_is_stored_as_the_unit_of_work_stores_one(db):
    # The same job appended two ways: through the unit of work outside a chunk, and left for the next trip in a
    # chunk (`append_new_job_later`). Its events, outbox rows, deadlines, row and open jobs are the same bytes,
    # but for what names the job or its request and what the write's time and positions make.
    application = dispatch_application(
        db=db, store=EventStore("dispatch"), clock=SystemClock(), time_rules=TimeRules(), sla=SlaPolicy()
    )
    cause = Metadata(correlation_id="corr-1", causation_id="cause-1")
    actor = application.system_actor
    received, _ = request_events(dealer_id="D1", received_at=RECEIVED_AT, request_id="R-1")
    data = ServiceRequestReceived.model_validate_json(received.data)
    at = RECEIVED_AT + timedelta(minutes=10)
    job, twin = (
        Job.create(
            RequestFacts(request_id, "D1", "north", "tractor", RECEIVED_AT),
            ServiceMode.onsite,
            Priority.P2,
            SlaPolicy(),
            at,
            Assignee("T1", "C1", True, frozenset({"tractor"})),
        )
        for request_id in ("R-1", "R-2")
    )
    async with db.transaction() as conn:
        uow = application.unit_of_work(conn, cause, actor)
        uow.add(twin)
        await uow.commit()
        with in_a_consumer_chunk(IncomingEvent(received, data)):
            reads = await chunk_reads(conn)
            assert reads is not None and reads.later is not None
            append_new_job_later(application.unit_of_work(conn, cause, actor), reads, reads.later, job)
            await _flush_deferred_writes(conn)
            assert reads.jobs == {"R-1"} and reads.candidate_of == {}

    outside, chunked = rows_of(db, "events", "position")[0:2], rows_of(db, "events", "position")[2:4]
    for a, b in zip(chunked, outside, strict=True):
        differing = [c.key for c, x, y in zip(events.c, a, b, strict=True) if x != y]
        assert differing == ["position", "event_id", "stream_id", "data", "recorded_at"]
        assert a[8] == b[8].replace(twin.id, job.id).replace("R-2", "R-1")
    assert rows_of(db, "outbox", "position") == [(1,), (2,), (3,), (4,)]
    deadlines = rows_of(db, "deadlines", "name")
    of_job, of_twin = ([row for row in deadlines if row[1] == one.id] for one in (job, twin))
    assert len(of_job) == 2 and of_job == [tuple(str(v).replace(twin.id, job.id) for v in row) for row in of_twin]
    chunk_job, outside_job = sorted(rows_of(db, "dispatch_jobs", "created_position"), key=lambda r: r[0] != job.id)
    differing = [c.key for c, a, b in zip(dispatch_jobs.c, chunk_job, outside_job, strict=True) if a != b]
    assert differing == ["job_id", "created_position", "request_id", "queue_key", "view"]
    assert chunk_job[1] == 3 and chunk_job[7] == queue_key(job, 3)
    assert chunk_job[-1] == outside_job[-1].replace(twin.id, job.id).replace("R-2", "R-1")
    assert rows_of(db, "dispatch_technician_load", "technician_id") == [("T1", 2)]
