"""Kafka for the benches: the broker they run against, and how many records reached a topic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars


async def end_offset_sum(bootstrap: str, topic: str) -> int:
    """Sum of the topic's end offsets over its partitions (records ever written, when nothing is deleted)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)  # no group
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions")
        offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(offsets.values())
    finally:
        await consumer.stop()


@contextmanager
def bench_broker(data_dir: Path) -> Iterator[tuple[str, bool]]:
    """The broker a bench runs against: $KAFKA_BOOTSTRAP, else a local single-node broker keeping its data in
    `data_dir`, stopped on exit. Yields the bootstrap servers and whether the broker is that local one."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP"):
        yield bootstrap, False
        return
    ensure_jars()
    broker = LocalKafkaBroker(data_dir=data_dir)
    broker.start()
    try:
        yield broker.bootstrap, True
    finally:
        broker.stop()
