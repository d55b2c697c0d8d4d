"""A live relay through a broker stall (SIGSTOP longer than its publish timeout, then SIGCONT) keeps its one
idempotent producer: every event reaches the topic exactly once. A broker of its own, not the session's."""

import asyncio
import os
import signal
import uuid

import pytest
from sqlalchemy import func, select

from deploy.kafka.launcher import LocalKafkaBroker
from shared.contracts.topics import INTAKE
from shared.eventstore import Database, EventStore
from shared.eventstore.tables import metadata, outbox
from shared.messaging.kafka import ensure_topics, reliable_producer
from shared.messaging.relay import OutboxRelay
from shared.observability.metrics import RELAY_ERRORS
from shared.testing.app import eventually
from shared.testing.escalations import append_escalations
from shared.testing.kafka import collect, headers_of


@pytest.fixture(scope="module")
def own_broker():
    broker = LocalKafkaBroker(num_partitions=1, heap="256m")
    broker.start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap, [INTAKE], partitions=1))
        yield broker
    finally:
        broker.close()


async def append(db: Database, stream: str, first_version: int, count: int) -> None:
    store = EventStore(source="stall-test")
    async with db.transaction() as conn:
        await append_escalations(conn, store, stream, [str(i) for i in range(count)], expected_version=first_version)


async def outbox_size(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()


def _errors(relay) -> float:
    """Rounds in which the relay could not publish (its Prometheus counter)."""
    return RELAY_ERRORS.labels(relay.source)._value.get()


async def test_a_relay_through_a_broker_stall_publishes_no_event_id_twice(own_broker, tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/stall.db")
    await db.create_all(metadata)
    stream = f"stall-{uuid.uuid4()}"
    relay = OutboxRelay(
        db,
        lambda: reliable_producer(own_broker.bootstrap, "stall-test"),
        source="stall-test",
        batch_size=100,
        poll_interval=0.05,
        publish_timeout=1.0,
    )
    task = asyncio.create_task(relay.run())
    broker_group = os.getpgid(own_broker._process.pid)
    try:
        await append(db, stream, 0, 50)
        await eventually(lambda: outbox_size(db), until=lambda n: n == 0, timeout=60)
        os.killpg(broker_group, signal.SIGSTOP)
        try:
            await append(db, stream, 50, 250)
            failures = _errors(relay)
            await eventually(lambda: asyncio.sleep(0, _errors(relay)), until=lambda n: n >= failures + 3, timeout=60)
        finally:
            os.killpg(broker_group, signal.SIGCONT)
        await eventually(lambda: outbox_size(db), until=lambda n: n == 0, timeout=90)
    finally:
        await relay.stop()
        await task
        await db.dispose()
    records = await collect(own_broker.bootstrap, INTAKE, lambda r: r.key.decode() == stream, expected=300, settle=2.0)
    ids = [headers_of(r)["ce_id"] for r in records]
    assert len(ids) - len(set(ids)) == 0, "duplicate event ids on the topic"
    assert [int(headers_of(r)["ce_sequence"]) for r in records] == list(range(1, 301))
