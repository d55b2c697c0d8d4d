"""Topics are created with KAFKA_REPLICATION_FACTOR and KAFKA_MIN_INSYNC_REPLICAS; an existing topic with
fewer replicas than configured is a warning; a replication the cluster cannot give is an error, not ignored."""

import logging
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.messaging.kafka import ensure_topics
from shared.testing.app import eventually


async def topic_config(bootstrap: str, topic: str, name: str) -> str | None:
    """The topic's config value, once the broker knows the topic (creation completes asynchronously)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()

    async def describe() -> str | None:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})])
        return {entry[0]: entry[1] for entry in response.resources[0][4]}.get(name)

    try:
        return await eventually(describe, until=lambda value: value is not None)
    finally:
        await admin.close()


async def test_a_created_topic_has_the_configured_min_insync_replicas(kafka_bootstrap):
    topic = f"replicated-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1, replication=1, min_insync_replicas=2)
    assert await topic_config(kafka_bootstrap, topic, "min.insync.replicas") == "2"
    assert await topic_config(kafka_bootstrap, f"{topic}.dlq", "min.insync.replicas") == "2"


async def test_more_replicas_than_brokers_is_an_error_naming_the_topic(kafka_bootstrap):
    topic = f"unreplicable-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match=topic):
        await ensure_topics(kafka_bootstrap, [topic], partitions=1, replication=3)


async def test_an_existing_topic_with_fewer_replicas_than_configured_is_a_warning(kafka_bootstrap, caplog):
    topic = f"thin-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1, replication=1)
    await topic_config(kafka_bootstrap, topic, "min.insync.replicas")  # the broker has it
    with caplog.at_level(logging.WARNING, logger="shared.messaging.kafka"):
        await ensure_topics(kafka_bootstrap, [topic], partitions=1, replication=3, min_insync_replicas=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(topic in w and "KAFKA_REPLICATION_FACTOR=3" in w for w in warnings), warnings
    assert any(topic in w and "KAFKA_MIN_INSYNC_REPLICAS=2" in w for w in warnings), warnings
