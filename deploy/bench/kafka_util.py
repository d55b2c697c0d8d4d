"""End offsets of a topic: how many records reached it."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition


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
