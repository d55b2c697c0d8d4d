"""Proof that aiokafka 0.14 works against the broker that deploy.kafka.launcher runs from the Maven jars."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from deploy.kafka.launcher import KAFKA_VERSION, LocalKafkaBroker, ensure_jars
from shared.testing.app import eventually

pytestmark = pytest.mark.kafka

KEYS = [f"device-{n}".encode() for n in range(5)]
C = TypeVar("C", AIOKafkaProducer, AIOKafkaConsumer)


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalKafkaBroker]:
    ensure_jars()
    local = LocalKafkaBroker(num_partitions=3)
    local.start()
    yield local
    local.close()


@pytest.fixture
async def admin(broker: LocalKafkaBroker) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await client.start()
    yield client
    await client.close()


async def new_topic(admin: AIOKafkaAdminClient, partitions: int = 3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    response = await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    assert all(error_code == 0 for _, error_code, *_ in response.topic_errors)
    return name


@asynccontextmanager
async def started(client: C) -> AsyncIterator[C]:
    """An aiokafka producer or consumer, started for the block and stopped after it."""
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def idempotent_producer(broker: LocalKafkaBroker) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")


def group_consumer(broker: LocalKafkaBroker, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )


async def send_batch(producer: AIOKafkaProducer, topic: str, rounds: int, first: int = 0) -> None:
    """Send `rounds` records per key; the value says key and sequence, the headers carry them too."""
    futures = []
    for seq in range(first, first + rounds):
        for key in KEYS:
            headers = [("event-type", b"visit-scheduled"), ("seq", str(seq).encode()), ("key", key)]
            futures.append(await producer.send(topic, b"%s:%d" % (key, seq), key=key, headers=headers))
    await asyncio.gather(*futures)


async def consume(consumer: AIOKafkaConsumer, count: int, timeout: float = 30) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    async with asyncio.timeout(timeout):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    return records


def values_by_key(records: list[ConsumerRecord]) -> dict[bytes, list[bytes]]:
    grouped: dict[bytes, list[bytes]] = defaultdict(list)
    for record in records:
        grouped[record.key].append(record.value)
    return dict(grouped)


async def test_the_broker_runs_the_pinned_kafka_version_on_loopback(
    broker: LocalKafkaBroker, admin: AIOKafkaAdminClient
) -> None:
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    cluster = await admin.describe_cluster()
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", broker.port)]
    assert f"Kafka version: {KAFKA_VERSION}" in broker.log_file.read_text()


async def test_the_admin_client_creates_a_topic_with_three_partitions(admin: AIOKafkaAdminClient) -> None:
    topic = await new_topic(admin, partitions=3)
    # CreateTopics answers before every broker's metadata cache has the topic: wait for it to be listed.
    assert topic in await eventually(admin.list_topics, until=lambda topics: topic in topics, timeout=10)
    [described] = await admin.describe_topics([topic])
    assert described["error_code"] == 0
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]


async def test_an_idempotent_producer_round_trips_keys_and_headers_through_a_consumer_group(
    broker: LocalKafkaBroker, admin: AIOKafkaAdminClient
) -> None:
    topic, group = await new_topic(admin), f"group-{uuid.uuid4().hex[:8]}"
    async with started(idempotent_producer(broker)) as producer:
        await send_batch(producer, topic, rounds=8)

    async with started(group_consumer(broker, topic, group)) as consumer:
        records = await consume(consumer, len(KEYS) * 8)
        await consumer.commit()

    assert len(records) == len(KEYS) * 8
    assert values_by_key(records) == {key: [b"%s:%d" % (key, seq) for seq in range(8)] for key in KEYS}
    for record in records:
        key, seq = record.value.split(b":")
        assert record.headers == (("event-type", b"visit-scheduled"), ("seq", seq), ("key", key))
    assert len({record.partition for record in records}) > 1, "keys should spread over the partitions"
    committed = await admin.list_consumer_group_offsets(group)
    assert sum(meta.offset for meta in committed.values()) == len(records)


async def test_a_restarted_consumer_in_the_same_group_resumes_from_its_committed_offsets(
    broker: LocalKafkaBroker, admin: AIOKafkaAdminClient
) -> None:
    topic, group = await new_topic(admin), f"group-{uuid.uuid4().hex[:8]}"
    async with started(idempotent_producer(broker)) as producer:
        await send_batch(producer, topic, rounds=3)
        async with started(group_consumer(broker, topic, group)) as first:
            await consume(first, len(KEYS) * 3)
            await first.commit()
        await send_batch(producer, topic, rounds=1, first=3)

    async with started(group_consumer(broker, topic, group)) as second:
        fresh = await consume(second, len(KEYS))
        assert await second.getmany(timeout_ms=1500) == {}
    assert sorted(record.value for record in fresh) == sorted(b"%s:3" % key for key in KEYS)


async def test_a_broker_restart_keeps_topics_and_records_and_the_producer_sends_again(
    broker: LocalKafkaBroker, admin: AIOKafkaAdminClient
) -> None:
    topic = await new_topic(admin)
    async with started(idempotent_producer(broker)) as producer:
        await send_batch(producer, topic, rounds=2)
        await asyncio.to_thread(broker.stop)
        assert not broker.running
        await asyncio.to_thread(broker.start)
        # The same idempotent producer outlived the restart and simply carries on.
        await send_batch(producer, topic, rounds=1, first=2)

    assert topic in await admin.list_topics()
    async with started(group_consumer(broker, topic, f"group-{uuid.uuid4().hex[:8]}")) as consumer:
        records = await consume(consumer, len(KEYS) * 3)
        end_offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    assert values_by_key(records) == {key: [b"%s:%d" % (key, seq) for seq in range(3)] for key in KEYS}
    assert sum(end_offsets.values()) == len(KEYS) * 3, "no duplicates after the restart"
