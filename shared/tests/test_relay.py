"""The outbox relay against a broker (the in-process one and real Kafka): everything due is published once, in order, and marked.
Each test stops its relays before it reads the topic: what is on it then is all there will be, and `collect` reads
it to its end, duplicates included."""

import asyncio
import uuid
from collections.abc import Awaitable

import pytest
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import func, select

from shared.contracts.topics import INTAKE
from shared.eventstore import EventStore
from shared.eventstore.store import _envelope
from shared.eventstore.tables import events, outbox
from shared.messaging.cloudevents import to_record
from shared.messaging.kafka import reliable_producer
from shared.messaging.relay import OutboxRelay, _tracing_on
from shared.testing.app import eventually
from shared.testing.escalations import append_escalations
from shared.testing.kafka import collect, headers_of


async def append_many(db, streams: list[str], per_stream: int) -> None:
    store = EventStore(source="relay-test")
    for version in range(per_stream):
        for stream in streams:
            async with db.transaction() as conn:
                await append_escalations(conn, store, stream, [str(version)], expected_version=version)


def relay_for(db, bootstrap, **options) -> OutboxRelay:
    return OutboxRelay(
        db, lambda: reliable_producer(bootstrap, "relay-test"), source="relay-test", poll_interval=0.05, **options
    )


async def partitions_of(bootstrap, topic) -> list[int]:
    producer = reliable_producer(bootstrap, "relay-test-metadata")
    await producer.start()
    try:
        return sorted(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def drained(db, *relays: OutboxRelay, meanwhile: Awaitable[object] | None = None) -> None:
    """Run `relays` (and `meanwhile` beside them) until the outbox is empty, then stop them: nothing more can
    reach the topic after this returns."""
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        if meanwhile is not None:
            await meanwhile
        await eventually(lambda: outbox_size(db), until=lambda n: n == 0)
    finally:
        for relay in relays:
            await relay.stop()
        await asyncio.gather(*tasks)


async def outbox_size(db) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()


async def test_the_relay_publishes_every_due_event_in_stream_order_and_empties_the_outbox(db, broker):
    streams = [f"relay-{uuid.uuid4()}" for _ in range(4)]
    await append_many(db, streams, per_stream=5)
    relay = relay_for(db, broker, batch_size=7)
    await drained(db, relay)
    records = await collect(broker, INTAKE, lambda r: r.key.decode() in streams, expected=20)
    assert len(records) == 20
    for stream in streams:
        sequences = [int(headers_of(r)["ce_sequence"]) for r in records if r.key.decode() == stream]
        assert sequences == [1, 2, 3, 4, 5]


async def test_two_relay_replicas_publish_each_event_exactly_once(db, broker):
    streams = [f"replica-{uuid.uuid4()}" for _ in range(3)]
    relays = [relay_for(db, broker, batch_size=4) for _ in range(2)]
    await drained(db, *relays, meanwhile=append_many(db, streams, per_stream=10))
    records = await collect(broker, INTAKE, lambda r: r.key.decode() in streams, expected=30)
    ids = [headers_of(r)["ce_id"] for r in records]
    assert len(ids) == len(set(ids)) == 30, "no duplicates, no gaps"
    assert sorted(r.published for r in relays)[0] == 0, "one replica held the lease, the other stood by"


async def test_no_event_is_skipped_when_transactions_commit_out_of_order(db, broker):
    if db.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time: commits cannot interleave")
    store = EventStore(source="relay-test")
    early, late = f"early-{uuid.uuid4()}", f"late-{uuid.uuid4()}"

    relay = relay_for(db, broker)
    task = asyncio.create_task(relay.run())
    try:
        async with db.engine.connect() as slow:
            transaction = await slow.begin()
            await append_escalations(slow, store, early, ["r"])  # the lower position
            async with db.transaction() as fast:
                await append_escalations(fast, store, late, ["r"])
            await eventually(lambda: outbox_size(db), until=lambda n: n == 0)  # the later one is out
            await transaction.commit()
        db.committed.set()
        await eventually(lambda: outbox_size(db), until=lambda n: n == 0)
    finally:
        await relay.stop()
        await task
    records = await collect(broker, INTAKE, lambda r: r.key.decode() in (early, late), expected=2)
    assert sorted(r.key.decode() for r in records) == sorted([early, late])


async def test_each_published_record_is_the_stored_event_as_to_record_builds_it_on_the_partition_send_would_pick(
    db, broker
):
    """The relay builds records from the outbox's columns without an envelope and batches them per partition
    itself: key, value and every CloudEvents header must still be those of `to_record`, and the partition the
    producer's own partitioner gives the key."""
    streams = [f"same-{uuid.uuid4()}" for _ in range(12)]
    await append_many(db, streams, per_stream=2)
    async with db.read() as conn:
        stored = (await conn.execute(select(events).where(events.c.stream_id.in_(streams)))).all()
    expected = {row.event_id: to_record(_envelope(row, "relay-test")) for row in stored}
    relay = relay_for(db, broker, batch_size=5)
    await drained(db, relay)
    records = await collect(broker, INTAKE, lambda r: r.key.decode() in streams, expected=24)
    partitions = await partitions_of(broker, INTAKE)
    assert len(records) == 24
    for record in records:
        topic, key, value, headers = expected[headers_of(record)["ce_id"]]
        published = [header for header in record.headers if header[0] != "traceparent"]
        assert (record.topic, record.key, record.value, published) == (
            topic,
            key,
            value,
            [header for header in headers if header[0] != "traceparent"],
        )
        assert_traceparent_carried(dict(record.headers).get("traceparent"), dict(headers).get("traceparent"))
        assert record.partition == DefaultPartitioner()(key, partitions, partitions)


def assert_traceparent_carried(published: bytes | None, stored: bytes | None) -> None:
    """While no tracer records (the default), the record carries the event's stored traceparent as it is. Once a
    tracer provider records (another test of the session may install one: it can be set only once per process),
    the relay's producer span is the record's parent: a new span id, in the stored event's trace if it has one."""
    if not _tracing_on():
        assert published == stored
        return
    assert published is not None
    if stored is not None:
        assert published.split(b"-")[1] == stored.split(b"-")[1]


async def test_a_round_spanning_several_producer_batches_per_partition_keeps_each_streams_order(db, broker):
    """With 2 KiB producer batches a round of 60 events fills several batches per partition, handed over one
    after another: every stream's events still arrive once each, in order."""
    streams = [f"split-{uuid.uuid4()}" for _ in range(6)]
    await append_many(db, streams, per_stream=10)
    relay = OutboxRelay(
        db,
        lambda: reliable_producer(broker, "relay-test", max_batch_size=2048),
        source="relay-test",
        poll_interval=0.05,
        batch_size=60,
    )
    await drained(db, relay)
    records = await collect(broker, INTAKE, lambda r: r.key.decode() in streams, expected=60)
    assert len(records) == 60
    for stream in streams:
        assert [int(headers_of(r)["ce_sequence"]) for r in records if r.key.decode() == stream] == list(range(1, 11))


async def test_an_event_larger_than_the_producers_request_limit_stays_due_and_the_events_before_it_go_out(db, broker):
    small, large = f"small-{uuid.uuid4()}", f"large-{uuid.uuid4()}"
    await append_many(db, [small], per_stream=2)
    async with db.transaction() as conn:
        await append_escalations(conn, EventStore(source="relay-test"), large, ["x" * 4000])
    relay = OutboxRelay(
        db,
        lambda: reliable_producer(broker, "relay-test", max_request_size=3000),
        source="relay-test",
        poll_interval=0.05,
    )
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: asyncio.sleep(0, relay.failures), until=lambda n: n >= 2)
        assert await outbox_size(db) == 1, "only the oversized event is left"
    finally:
        await relay.stop()
        await task
    records = await collect(broker, INTAKE, lambda r: r.key.decode() in (small, large), expected=2)
    assert [r.key.decode() for r in records] == [small, small]


async def test_a_slow_outbox_delete_holds_back_neither_the_next_events_nor_publishes_the_acknowledged_ones_again(
    db, broker
):
    if db.is_sqlite:
        pytest.skip("SQLite has one writer: a lock held on the outbox would stop the appends as well")
    first, second = f"first-{uuid.uuid4()}", f"second-{uuid.uuid4()}"
    await append_many(db, [first], per_stream=3)
    relay = relay_for(db, broker)
    task = None
    async with db.engine.connect() as locker:
        lock = await locker.begin()
        # Row locks on the first stream's outbox rows: the relay's delete of them waits until `lock` ends.
        await locker.execute(select(outbox.c.position).with_for_update())
        try:
            task = asyncio.create_task(relay.run())
            await collect(broker, INTAKE, lambda r: r.key.decode() == first, expected=3)
            async with db.transaction() as conn:  # one transaction: one read of the relay takes them all
                await append_escalations(conn, EventStore(source="relay-test"), second, [str(n) for n in range(3)])
            records = await collect(broker, INTAKE, lambda r: r.key.decode() == second, expected=3)
            assert len(records) == 3, "the second stream went out while the first one's delete was waiting"
            assert await outbox_size(db) >= 3, "the first stream's rows were still in the outbox meanwhile"
        finally:
            await lock.commit()
    try:
        await eventually(lambda: outbox_size(db), until=lambda n: n == 0)
    finally:
        await relay.stop()
        await task
    records = await collect(broker, INTAKE, lambda r: r.key.decode() in (first, second), expected=6)
    ids = [headers_of(r)["ce_id"] for r in records]
    assert len(ids) == len(set(ids)) == 6, "every event once: none of the acknowledged ones was sent again"
    for stream in (first, second):
        assert [int(headers_of(r)["ce_sequence"]) for r in records if r.key.decode() == stream] == [1, 2, 3]
    assert relay.published == 6
