"""The idempotent consumer runner against a broker (the in-process one and real Kafka) and a real database: one effect per event id, offsets
committed after the effect, poison records to the DLQ, and nothing lost or doubled when the process is
killed mid-stream."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, insert, select

from shared.contracts.intake import ServiceRequestEscalated
from shared.contracts.topics import dlq_for
from shared.eventstore import Database, lean
from shared.eventstore.tables import processed_events
from shared.messaging.cloudevents import to_record
from shared.messaging.consumer import PermanentFailure
from shared.messaging.kafka import ensure_topics, reliable_producer
from shared.testing.app import eventually
from shared.testing.counting_consumer import REJECTED_PREFIX, counting_consumer, effects, prepare
from shared.testing.kafka import collect, envelope_for, headers_of, publish, publish_raw, subject_is


async def new_topic(bootstrap: str) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}.events"
    await ensure_topics(bootstrap, [name, dlq_for(name)], partitions=2)
    return name


@pytest.fixture
async def topic(broker):
    return await new_topic(broker)


@pytest.fixture
async def kafka_topic(kafka_bootstrap):
    """A topic on the real broker: the test that kills a consumer process cannot share an in-process one."""
    return await new_topic(kafka_bootstrap)


@pytest.fixture
async def db(database_url):
    database = Database(database_url)
    await prepare(database)
    yield database
    await database.dispose()


def event(topic: str, subject: str, **options):
    return replace(envelope_for(ServiceRequestEscalated(request_id=subject, reason="r"), **options), topic=topic)


async def effect_count(db, subject: str | None = None) -> int:
    query = select(func.count()).select_from(effects)
    if subject:
        query = query.where(effects.c.subject == subject)
    async with db.read() as conn:
        return (await conn.execute(query)).scalar_one()


def as_records(topic: str, envelopes) -> list[ConsumerRecord]:
    """The records one poll of partition 0 would hand over, in order."""
    records = []
    for offset, envelope in enumerate(envelopes):
        _, key, value, headers = to_record(envelope)
        records.append(ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers))
    return records


def counting_transactions(db: Database) -> list[int]:
    """Count the write transactions `db` opens from now on (the first item of the list returned)."""
    opened = [0]
    original = db.transaction

    @asynccontextmanager
    async def transaction():
        opened[0] += 1
        async with original() as conn:
            yield conn

    db.transaction = transaction
    return opened


async def processed_ids(db) -> set[str]:
    async with db.read() as conn:
        return set((await conn.execute(select(processed_events.c.event_id))).scalars())


class Running:
    def __init__(self, consumer):
        self.consumer = consumer

    async def __aenter__(self):
        self.task = asyncio.create_task(self.consumer.run())
        return self.consumer

    async def __aexit__(self, *exc):
        await self.consumer.stop()
        await self.task


async def test_an_event_delivered_twice_has_one_effect_even_across_a_restart(db, topic, broker):
    group = f"g-{uuid.uuid4().hex[:6]}"
    twice = event(topic, "dup-1")
    await publish(broker, twice, twice, event(topic, "other"))
    async with Running(counting_consumer(db, broker, group, topic)) as consumer:
        await eventually(lambda: effect_count(db), until=lambda n: n == 2)
    assert consumer.counts["duplicate"] == 1

    await publish(broker, twice, event(topic, "marker"))
    async with Running(counting_consumer(db, broker, group, topic)) as restarted:
        await eventually(lambda: effect_count(db, "marker"), until=lambda n: n == 1)
    assert await effect_count(db, "dup-1") == 1
    assert restarted.counts == {"applied": 1, "duplicate": 1, "ignored": 0, "dlq": 0}, (
        "committed offsets hold: the restarted consumer read only the two new records"
    )


async def test_poison_records_go_to_the_dlq_with_their_reason_and_the_partition_keeps_flowing(db, topic, broker):
    key = "poison-key"
    await publish_raw(broker, topic, b"\x00\x01 not an event", key=key.encode())
    await publish(broker, replace(event(topic, key), data='{"request_id": 42}'))
    await publish(broker, replace(event(topic, key), dataschema="service_request.escalated/7"))
    await publish(broker, event(topic, key))
    async with Running(counting_consumer(db, broker, f"g-{uuid.uuid4().hex[:6]}", topic)) as consumer:
        await eventually(lambda: effect_count(db, key), until=lambda n: n == 1)
    assert consumer.counts["dlq"] == 3
    dead = await collect(broker, dlq_for(topic), subject_is(key), expected=3)
    reasons = [headers_of(r)["dlq_reason"] for r in dead]
    assert reasons[0].startswith("unreadable: missing CloudEvents headers")
    assert reasons[1].startswith("invalid data for service_request.escalated/1: request_id")
    assert reasons[2] == "unknown schema service_request.escalated/7"
    assert dead[0].value == b"\x00\x01 not an event"
    assert {headers_of(r)["dlq_topic"] for r in dead} == {topic}


async def test_an_event_whose_handler_keeps_failing_goes_to_the_dlq_after_its_retries(db, topic, broker):
    await publish(broker, event(topic, "broken"), event(topic, "fine"))
    consumer = counting_consumer(db, broker, f"g-{uuid.uuid4().hex[:6]}", topic, fail_subjects=frozenset({"broken"}))
    async with Running(consumer):
        await eventually(lambda: effect_count(db, "fine"), until=lambda n: n == 1)

        async def dead_letters() -> int:
            return consumer.counts["dlq"]

        # Stopping while a record is still being retried leaves it for the restart (its offset uncommitted):
        # wait for its retries to run out here, before the consumer stops.
        await eventually(dead_letters, until=lambda n: n == 1)
    dead = await collect(broker, dlq_for(topic), subject_is("broken"), expected=1)
    assert "handler failed: RuntimeError: cannot handle broken" in headers_of(dead[0])["dlq_reason"]
    assert await effect_count(db, "broken") == 0, "the failed attempts were rolled back"


async def test_a_transaction_of_more_events_than_one_claim_statement_takes_claims_each_event_once(db, topic, broker):
    # 2,400 events in one transaction: three claim statements on PostgreSQL (1,000 ids each), one trip on SQLite.
    envelopes = [event(topic, f"many-{i}") for i in range(2400)]
    batch = as_records(topic, [*envelopes, envelopes[5], envelopes[1500]])  # two delivered twice, far apart
    consumer = counting_consumer(db, broker, f"g-{uuid.uuid4().hex[:6]}", topic)
    consumer.transaction_size = len(batch)
    transactions = counting_transactions(db)
    try:
        await consumer.handle_records(batch)
        assert transactions[0] == 1
        assert consumer.counts == {"applied": 2400, "duplicate": 2, "ignored": 0, "dlq": 0}
        assert await effect_count(db) == 2400
        assert await processed_ids(db) >= {envelope.id for envelope in envelopes}
    finally:
        await consumer.stop()


async def test_a_rejected_event_of_a_batch_goes_to_the_dlq_and_the_others_of_its_transaction_apply_exactly_once(
    db, topic, broker
):
    group = f"g-{uuid.uuid4().hex[:6]}"
    envelopes = [event(topic, f"batch-{i}") for i in range(7)]
    envelopes[3] = event(topic, f"{REJECTED_PREFIX}batch-3")
    batch = as_records(topic, [*envelopes, envelopes[1]])  # and one event delivered twice in the same batch
    consumer = counting_consumer(db, broker, group, topic)
    consumer.producer_factory = lambda: reliable_producer(broker, "test-dlq")
    transactions = counting_transactions(db)
    try:
        assert await consumer.handle_records(batch) == len(batch)
        assert transactions[0] == 1, "the whole batch was applied in one transaction"
        assert consumer.counts == {"applied": 6, "duplicate": 1, "ignored": 0, "dlq": 1}
        for i in (0, 1, 2, 4, 5, 6):
            assert await effect_count(db, f"batch-{i}") == 1
        assert await effect_count(db, f"{REJECTED_PREFIX}batch-3") == 0, "the rejected event's write was undone"
        assert envelopes[3].id not in await processed_ids(db), "a rejected event is not marked processed"
        [dead] = await collect(broker, dlq_for(topic), subject_is(f"{REJECTED_PREFIX}batch-3"), expected=1)
        assert headers_of(dead)["dlq_reason"] == f"rejected: {REJECTED_PREFIX}batch-3 is rejected"

        # The same batch again, as after a restart before its offsets were committed: nothing applies twice.
        await consumer.handle_records(batch)
        assert consumer.counts == {"applied": 6, "duplicate": 8, "ignored": 0, "dlq": 2}
        assert await effect_count(db) == 6
    finally:
        await consumer.stop()
        if consumer._dlq_producer is not None:
            await consumer._dlq_producer.stop()


async def test_killing_the_consumer_process_mid_stream_loses_nothing_and_counts_nothing_twice(
    database_url, kafka_topic, kafka_bootstrap
):
    """Every 30th event is poison by its handler's verdict, in the middle of the batches the kills cut: none of
    them leaves an effect and each reaches the DLQ (at least once: a kill after its batch committed and before
    its DLQ publication sends it again after the restart, since a rejected event is never marked processed)."""
    topic = kafka_topic
    url = database_url
    total = 300
    rejected = {f"{REJECTED_PREFIX}{i}" for i in range(15, total, 30)}
    subjects = [f"{REJECTED_PREFIX}{i}" if f"{REJECTED_PREFIX}{i}" in rejected else f"k-{i}" for i in range(total)]
    await publish(kafka_bootstrap, *(event(topic, subject) for subject in subjects))
    group = f"g-{uuid.uuid4().hex[:6]}"
    command = [sys.executable, "-m", "shared.testing.counting_consumer", url, kafka_bootstrap, group, topic, "0.005"]
    db = Database(url)
    await prepare(db)
    try:
        for kill_at in (60, 160):
            process = subprocess.Popen(command, start_new_session=True)
            try:
                await eventually(lambda: effect_count(db), until=lambda n: n >= kill_at, timeout=60)
            finally:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert await effect_count(db) < total - len(rejected), "the kills landed mid-stream"
        process = subprocess.Popen(command, start_new_session=True)
        try:
            await eventually(lambda: effect_count(db), until=lambda n: n >= total - len(rejected), timeout=60)
            await asyncio.sleep(1.0)  # anything counted twice would show now
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        async with db.read() as conn:
            distinct = (await conn.execute(select(func.count(func.distinct(effects.c.event_id))))).scalar_one()
        assert await effect_count(db) == distinct == total - len(rejected)
        for subject in rejected:
            assert await effect_count(db, subject) == 0
        dead = await collect(kafka_bootstrap, dlq_for(topic), subject_is(*rejected), expected=len(rejected))
        assert {r.key.decode() for r in dead} == rejected
    finally:
        await db.dispose()


async def test_a_write_left_for_the_next_trip_that_fails_sends_its_event_alone_to_the_dlq(db, topic, broker):
    # `lean.write_later` writes run with the next trip, whichever event's: the failing one fails its chunk, the
    # records are retried one by one, and only the event whose write cannot be stored reaches the DLQ.
    taken = 10_000
    async with db.transaction() as conn:
        await conn.execute(insert(effects).values(seq=taken, event_id="x", subject="taken"))
    envelopes = [event(topic, f"later-{i}") for i in range(6)]
    clash = envelopes[2]

    async def record_later(incoming, conn) -> None:
        row = {"event_id": incoming.id, "subject": incoming.envelope.subject}
        if incoming.id == clash.id:
            await lean.write_later(conn, [(_INSERT_EFFECT_AT, {**row, "seq": taken})])
        else:
            await lean.write_later(conn, [(_INSERT_EFFECT, row)])

    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = counting_consumer(db, broker, group, topic)
    consumer.handlers = {"service_request.escalated": record_later}
    consumer.producer_factory = lambda: reliable_producer(broker, "test-dlq")
    consumer.handler_attempts = 2
    try:
        assert await consumer.handle_records(as_records(topic, envelopes)) == len(envelopes)
        assert consumer.counts == {"applied": 5, "duplicate": 0, "ignored": 0, "dlq": 1}
        for i in (0, 1, 3, 4, 5):
            assert await effect_count(db, f"later-{i}") == 1
        assert await effect_count(db, clash.subject) == 0
        [dead] = await collect(broker, dlq_for(topic), subject_is(clash.subject), expected=1)
        assert headers_of(dead)["dlq_reason"].startswith("handler failed: IntegrityError")
        assert clash.id not in await processed_ids(db)
    finally:
        await consumer.stop()
        if consumer._dlq_producer is not None:
            await consumer._dlq_producer.stop()


async def test_a_rejected_event_leaves_none_of_the_writes_it_left_for_the_next_trip(db, topic, broker):
    # A handler that leaves writes for the next trip and then rejects its event (PermanentFailure): its savepoint
    # never ran, and the writes it left go with it — none lands outside the savepoint while the event is dead.
    envelopes = [event(topic, f"rejected-later-{i}") for i in range(4)]
    rejected = envelopes[1]

    async def record_then_maybe_reject(incoming, conn) -> None:
        await lean.write_later(
            conn, [(_INSERT_EFFECT, {"event_id": incoming.id, "subject": incoming.envelope.subject})]
        )
        if incoming.id == rejected.id:
            raise PermanentFailure("rejected after leaving a write for later")

    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = counting_consumer(db, broker, group, topic)
    consumer.handlers = {"service_request.escalated": record_then_maybe_reject}
    consumer.producer_factory = lambda: reliable_producer(broker, "test-dlq")
    try:
        assert await consumer.handle_records(as_records(topic, envelopes)) == len(envelopes)
        assert consumer.counts == {"applied": 3, "duplicate": 0, "ignored": 0, "dlq": 1}
        for i in (0, 2, 3):
            assert await effect_count(db, f"rejected-later-{i}") == 1
        assert await effect_count(db, rejected.subject) == 0
        await collect(broker, dlq_for(topic), subject_is(rejected.subject), expected=1)
    finally:
        await consumer.stop()
        if consumer._dlq_producer is not None:
            await consumer._dlq_producer.stop()


_INSERT_EFFECT = lean.Prepared(insert(effects), columns=["event_id", "subject"])
_INSERT_EFFECT_AT = lean.Prepared(insert(effects), columns=["seq", "event_id", "subject"])
