"""Read and write real Kafka topics from tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.clock import utcnow
from shared.contracts.base import EventData
from shared.events import EventEnvelope
from shared.messaging import memory
from shared.messaging.cloudevents import to_record
from shared.messaging.kafka import plain_consumer, reliable_producer


def envelope_for(
    data: EventData,
    *,
    source: str = "test",
    time: datetime | None = None,
    sequence: int = 1,
    event_id: str | None = None,
    correlation_id: str | None = None,
    actor: str | None = None,
) -> EventEnvelope:
    """A CloudEvent as another service would publish it (caused by `actor`, by default `system:<source>`)."""
    event_id = event_id or str(uuid.uuid4())
    time = time or utcnow()
    return EventEnvelope(
        id=event_id,
        source=source,
        type=data.event_type,
        subject=data.subject,
        time=time,
        dataschema=data.dataschema(),
        sequence=sequence,
        recordedat=utcnow(),
        correlationid=correlation_id or event_id,
        causationid=event_id,
        data=data.model_dump_json(),
        topic=data.topic,
        actor=actor or f"system:{source}",
    )


async def publish(bootstrap: str, *envelopes: EventEnvelope) -> None:
    producer = reliable_producer(bootstrap, "test-publisher")
    await producer.start()
    try:
        futures = []
        for envelope in envelopes:
            topic, key, value, headers = to_record(envelope)
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_raw(
    bootstrap: str,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = reliable_producer(bootstrap, "test-publisher")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


async def collect(
    bootstrap: str,
    topic: str,
    match: Callable[[ConsumerRecord], bool],
    *,
    expected: int,
    timeout: float = 20.0,
    settle: float = 0.0,
) -> list[ConsumerRecord]:
    """Read `topic` from the beginning (no group) until `expected` matching records arrived and then to the
    topic's end as it stands at that moment, so that extra (duplicate) records already published show too;
    `settle`: keep reading that many seconds more (for what may still come; `shared.testing.app.all_published`
    waits for a service to have published everything instead)."""
    consumer = plain_consumer(bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()  # topic just created
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settle_until: float | None = None
        ends: dict[TopicPartition, int] = {}
        while loop.time() < deadline:
            if len(found) >= expected and settle_until is None:
                settle_until = loop.time() + settle
                ends = await consumer.end_offsets(partitions)
            if settle_until is not None and loop.time() >= settle_until and await _read_to(consumer, ends):
                break
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                found.extend(r for r in records if match(r))
    finally:
        await consumer.stop()
    return found


async def _read_to(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def caught_up(app: Any, timeout: float = 20.0) -> None:
    """Wait until `app`'s consumer group (the runtime's, or a consumer of its own at `app.state.consumer` like
    analytics' batch consumer) has committed every record now on the topics it follows (lag 0): all it will do
    with them, ignoring them included, is done."""
    consumer = app.state.runtime.consumer or app.state.consumer
    reader = plain_consumer(app.state.runtime.settings.kafka_bootstrap, group_id=consumer.name)
    await reader.start()
    try:
        if any(reader.partitions_for_topic(topic) is None for topic in consumer.topics):
            await reader._client.force_metadata_update()  # a reader of no topic may not have their metadata yet
        partitions = []
        for topic in consumer.topics:
            partitions += [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        ends = await reader.end_offsets(partitions)

        async def lag() -> int:
            behind = 0
            for tp, end in ends.items():
                behind += max(0, end - (await reader.committed(tp) or 0))
            return behind

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (behind := await lag()) > 0:
            if loop.time() > deadline:
                raise AssertionError(f"{consumer.name} still {behind} records behind after {timeout}s")
            await asyncio.sleep(0.02)
    finally:
        await reader.stop()


async def start_group_at_end(bootstrap: str, group: str, topics: list[str], *, keep_committed: bool = False) -> None:
    """Commit `group`'s offsets at the end of `topics`, so that a test app's consumer reads only what comes
    next instead of every earlier test's events. `keep_committed`: leave the partitions where the group has
    committed already as they are (a restarted app resumes where it was)."""
    if memory.is_memory(bootstrap):
        _start_in_memory_group_at_end(bootstrap, group, topics, keep_committed)
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        if keep_committed:
            partitions = [tp for tp in partitions if await consumer.committed(tp) is None]
        if partitions:
            await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


def start_group_at_end_now(bootstrap: str, group: str, topics: list[str], *, keep_committed: bool = False) -> None:
    """`start_group_at_end` from synchronous code (a settings fixture) or from under a running loop: it runs on a
    loop of its own, in a thread."""
    if memory.is_memory(bootstrap):  # the in-process broker lives on the caller's loop: no thread, no wait
        _start_in_memory_group_at_end(bootstrap, group, topics, keep_committed)
        return
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, start_group_at_end(bootstrap, group, topics, keep_committed=keep_committed)).result()


def _start_in_memory_group_at_end(bootstrap: str, group: str, topics: list[str], keep_committed: bool) -> None:
    broker = memory.broker_for(bootstrap)
    ends = {
        tp: broker.end_offset(tp)
        for tp in (TopicPartition(t, p) for t in topics for p in broker.partitions_of(t))
        if not (keep_committed and broker.committed(group, tp) is not None)
    }
    broker.commit(group, ends)


async def group_at_end(bootstrap: str, topics: list[str], prefix: str) -> str:
    """A new consumer group named `<prefix>-<random>` whose committed offsets are the topics' current ends."""
    group = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(bootstrap, group, topics)
    return group


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {k: v.decode() for k, v in (record.headers or ())}


def subject_is(*subjects: str) -> Callable[[ConsumerRecord], bool]:
    wanted = {s.encode() for s in subjects}
    return lambda record: record.key in wanted


__all__ = [
    "collect",
    "envelope_for",
    "group_at_end",
    "headers_of",
    "publish",
    "publish_raw",
    "start_group_at_end",
    "start_group_at_end_now",
    "subject_is",
]
