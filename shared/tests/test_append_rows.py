"""What an append stores and publishes, pinned byte for byte for a fixed event: the events row and the outbox row
as SQLite holds them, the envelope the append returns (what the relay reads back) and the Kafka record the relay
makes of it. A faster append must leave every byte of these as they are. The random bytes of the event id and the
recording time are the only inputs an append does not take from its caller; the test fixes both."""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

import shared.eventstore.store as store_module
from shared.contracts.intake import ServiceRequestEscalated
from shared.events import ActorId, EventEnvelope
from shared.eventstore import ConcurrencyError, Database, EventStore, NewEvent
from shared.eventstore.lean import lean_driver
from shared.eventstore.store import Metadata, actor_text, new_event_id
from shared.eventstore.tables import events, metadata, outbox
from shared.messaging.cloudevents import to_record

RANDOM_BYTES = bytes(range(0xA0, 0xB0))
RECORDED_AT = datetime(2026, 12, 1, 9, 30, 5, 654321, tzinfo=UTC)
OCCURRED_AT = datetime(2026, 11, 30, 8, 15, 0, 123456, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CAUSE = Metadata(correlation_id="corr-1", causation_id="cause-9", traceparent=TRACEPARENT)
# A dealer's user whose subject needs escaping: the stored actor is the escaped text.
ACTOR = ActorId.user("alice;50%", dealer_id="D-7")
EXPECTED_ID = "a0a1a2a3-a4a5-46a7-a8a9-aaabacadaeaf"  # RANDOM_BYTES as a version 4 UUID

EXPECTED_ROW = (
    1,
    EXPECTED_ID,
    "SR-PIN",
    "service_request",
    1,
    "service_request.escalated",
    1,
    "intake.events",
    '{"request_id":"SR-PIN","reason":"customer called twice"}',
    "2026-11-30 08:15:00.123456",
    "2026-12-01 09:30:05.654321",
    "corr-1",
    "cause-9",
    TRACEPARENT,
    "user:alice%3B50%25;dealer=D-7",
)

EXPECTED_ENVELOPE = EventEnvelope(
    id=EXPECTED_ID,
    source="intake",
    type="service_request.escalated",
    subject="SR-PIN",
    time=OCCURRED_AT,
    dataschema="service_request.escalated/1",
    sequence=1,
    recordedat=RECORDED_AT,
    correlationid="corr-1",
    causationid="cause-9",
    data='{"request_id":"SR-PIN","reason":"customer called twice"}',
    topic="intake.events",
    traceparent=TRACEPARENT,
    position=1,
    actor="user:alice%3B50%25;dealer=D-7",
)

EXPECTED_HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_id", EXPECTED_ID.encode()),
    ("ce_source", b"intake"),
    ("ce_type", b"service_request.escalated"),
    ("ce_subject", b"SR-PIN"),
    ("ce_time", b"2026-11-30T08:15:00.123456Z"),
    ("ce_dataschema", b"service_request.escalated/1"),
    ("content-type", b"application/json"),
    ("ce_sequence", b"1"),
    ("ce_recordedat", b"2026-12-01T09:30:05.654321Z"),
    ("ce_correlationid", b"corr-1"),
    ("ce_causationid", b"cause-9"),
    ("ce_actor", b"user:alice%3B50%25;dealer=D-7"),
    ("traceparent", TRACEPARENT.encode()),
]


@pytest.fixture
def fixed_randomness_and_clock(monkeypatch):
    real_urandom = os.urandom
    monkeypatch.setattr(os, "urandom", lambda n: RANDOM_BYTES if n == 16 else real_urandom(n))
    monkeypatch.setattr(store_module, "utcnow", lambda: RECORDED_AT)


@pytest.fixture
async def sqlite_db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/pinned.db")
    await database.create_all(metadata)
    yield database
    await database.dispose()


def test_the_fixed_random_bytes_are_the_event_id_uuid4_makes_of_them(fixed_randomness_and_clock):
    assert str(uuid.uuid4()) == EXPECTED_ID


async def test_an_appended_event_is_stored_returned_and_published_exactly_as_pinned(
    sqlite_db, fixed_randomness_and_clock
):
    async with sqlite_db.transaction() as conn:
        assert lean_driver(conn) is not None  # the hot path, the one made cheaper
        appended = await EventStore("intake").append(
            conn,
            stream_id="SR-PIN",
            stream_type="service_request",
            expected_version=0,
            new_events=[
                NewEvent(ServiceRequestEscalated(request_id="SR-PIN", reason="customer called twice"), OCCURRED_AT)
            ],
            metadata=CAUSE,
            actor=ACTOR,
        )
    with sqlite3.connect(sqlite_db.url.database) as raw:
        assert raw.execute("SELECT * FROM events").fetchall() == [EXPECTED_ROW]
        assert raw.execute("SELECT * FROM outbox").fetchall() == [(1,)]
    assert appended == [EXPECTED_ENVELOPE]
    assert to_record(appended[0]) == (
        "intake.events",
        b"SR-PIN",
        b'{"request_id":"SR-PIN","reason":"customer called twice"}',
        EXPECTED_HEADERS,
    )
    async with sqlite_db.read() as conn:
        assert await EventStore("intake").read_all(conn) == [EXPECTED_ENVELOPE]


async def test_a_lost_race_stores_no_row_and_leaves_the_first_writers_rows_as_pinned(
    sqlite_db, fixed_randomness_and_clock
):
    escalated = NewEvent(ServiceRequestEscalated(request_id="SR-PIN", reason="customer called twice"), OCCURRED_AT)
    async with sqlite_db.transaction() as conn:
        await append_to_pin(conn, 0, [escalated])
    async with sqlite_db.transaction() as conn:
        with pytest.raises(ConcurrencyError):
            await append_to_pin(conn, 0, [escalated, escalated])
    with sqlite3.connect(sqlite_db.url.database) as raw:
        assert raw.execute("SELECT * FROM events").fetchall() == [EXPECTED_ROW]
        assert raw.execute("SELECT * FROM outbox").fetchall() == [(1,)]


def test_an_event_id_is_the_text_uuid4_makes_of_the_same_random_bytes(monkeypatch):
    for _ in range(2000):
        drawn = os.urandom(16)
        monkeypatch.setattr(os, "urandom", lambda n, drawn=drawn: drawn)
        assert new_event_id() == str(uuid.UUID(bytes=drawn, version=4))
        monkeypatch.undo()


async def test_an_outbox_row_refused_takes_its_event_row_with_it_and_the_transaction_goes_on(sqlite_db):
    escalated = NewEvent(ServiceRequestEscalated(request_id="SR-PIN", reason="customer called twice"), OCCURRED_AT)
    async with sqlite_db.transaction() as conn:
        # A stale outbox row where the next event's position will be (nothing else could refuse that row).
        await conn.execute(insert(outbox), {"position": 1})
        with pytest.raises(ConcurrencyError):
            await append_to_pin(conn, 0, [escalated])
        assert (await conn.execute(select(func.count()).select_from(events))).scalar_one() == 0
        await conn.execute(delete(outbox))
        [stored] = await append_to_pin(conn, 0, [escalated])
    with sqlite3.connect(sqlite_db.url.database) as raw:
        assert raw.execute("SELECT position, version FROM events").fetchall() == [(stored.position, 1)]
        assert raw.execute("SELECT * FROM outbox").fetchall() == [(stored.position,)]


async def append_to_pin(conn, expected_version: int, new_events: list[NewEvent]) -> list:
    """Append to the pinned stream SR-PIN as intake, caused by CAUSE, by ACTOR."""
    return await EventStore("intake").append(
        conn,
        stream_id="SR-PIN",
        stream_type="service_request",
        expected_version=expected_version,
        new_events=new_events,
        metadata=CAUSE,
        actor=ACTOR,
    )


def two_escalations() -> list[NewEvent]:
    return [
        NewEvent(ServiceRequestEscalated(request_id="SR-PIN", reason=reason), OCCURRED_AT)
        for reason in ("customer called twice", "and again")
    ]


async def rows_of(conn) -> tuple[list[tuple], list[tuple]]:
    found = await conn.execute(select(events.c.position, events.c.stream_id, events.c.version).order_by("position"))
    boxed = await conn.execute(select(outbox.c.position).order_by("position"))
    return [tuple(r) for r in found], [tuple(r) for r in boxed]


async def test_an_append_refused_at_its_second_event_leaves_nothing_of_its_first_behind(sqlite_db):
    async with sqlite_db.transaction() as conn:
        # The stream holds a version 2 but no version 1 (no writer does this): the second INSERT is refused.
        await append_to_pin(conn, 1, two_escalations()[:1])
        with pytest.raises(ConcurrencyError):
            await append_to_pin(conn, 0, two_escalations())
        assert await rows_of(conn) == ([(1, "SR-PIN", 2)], [(1,)])
        [third] = await append_to_pin(conn, 2, two_escalations()[:1])
        assert third.position == 2  # the refused append's positions were not used up
        assert await rows_of(conn) == ([(1, "SR-PIN", 2), (2, "SR-PIN", 3)], [(1,), (2,)])


async def test_an_append_whose_second_outbox_row_is_refused_leaves_neither_events_nor_outbox_rows(sqlite_db):
    async with sqlite_db.transaction() as conn:
        await conn.execute(insert(outbox), {"position": 2})  # stale, where the second event will be
        with pytest.raises(ConcurrencyError):
            await append_to_pin(conn, 0, two_escalations())
        assert await rows_of(conn) == ([], [(2,)])  # the stale row stays: the append wrote it not


def test_an_actors_remembered_text_is_its_text_however_many_actors_come_and_go():
    actors = [ActorId.user(f"u;{i}%", dealer_id=f"D-{i % 7}" if i % 2 else None) for i in range(5000)]
    actors += [ActorId.system("dispatch"), ACTOR]
    for _ in range(2):  # the second time round, from what was remembered (or forgotten when it grew too big)
        assert [actor_text(actor) for actor in actors] == [str(actor) for actor in actors]


def later_to_pin(conn, expected_version: int, new_events: list[NewEvent], then=None) -> None:
    """`append_to_pin`, left for the next trip to the writer."""
    driver = lean_driver(conn)
    assert driver is not None  # the lean path: SQLite, in a transaction
    EventStore("intake").append_later(
        driver,
        conn.dialect,
        stream_id="SR-PIN",
        stream_type="service_request",
        expected_version=expected_version,
        new_events=new_events,
        metadata=CAUSE,
        actor=ACTOR,
        then=then,
    )


async def test_an_append_left_for_the_next_trip_runs_with_it_and_stores_the_pinned_rows(
    sqlite_db, fixed_randomness_and_clock
):
    escalated = NewEvent(ServiceRequestEscalated(request_id="SR-PIN", reason="customer called twice"), OCCURRED_AT)
    positions_seen: list[list[int]] = []
    async with sqlite_db.transaction() as conn:
        later_to_pin(conn, 0, [escalated], then=lambda raw, positions: positions_seen.append(positions))
        assert positions_seen == [], "nothing runs before the next trip"
        driver = lean_driver(conn)
        assert driver is not None and driver.has_deferred_writes()
        assert await rows_of(conn) == ([(1, "SR-PIN", 1)], [(1,)])  # that trip ran it first
        assert positions_seen == [[1]]
    with sqlite3.connect(sqlite_db.url.database) as raw:
        assert raw.execute("SELECT * FROM events").fetchall() == [EXPECTED_ROW]
        assert raw.execute("SELECT * FROM outbox").fetchall() == [(1,)]


async def test_an_append_left_for_the_next_trip_that_is_refused_fails_that_trip_not_as_a_lost_race(sqlite_db):
    # The trip may be another caller's (the consumer's next event): a ConcurrencyError would be taken for that
    # caller's own lost race and retried, the refused append forgotten. An IntegrityError fails the transaction.
    async with sqlite_db.transaction() as conn:
        await append_to_pin(conn, 1, two_escalations()[:1])  # version 2 only: the second row will be refused
        later_to_pin(conn, 0, two_escalations(), then=lambda raw, positions: pytest.fail("ran `then`"))
        with pytest.raises(IntegrityError) as refused:
            await rows_of(conn)
        assert not isinstance(refused.value, ConcurrencyError)
        assert await rows_of(conn) == ([(1, "SR-PIN", 2)], [(1,)]), "nothing of the refused append is left"
