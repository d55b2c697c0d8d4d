"""aiokafka with the settings Servicetrail needs, in one place (the library's defaults are weak for us)."""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def reliable_producer(bootstrap: str, client_id: str, **overrides) -> AIOKafkaProducer:
    """Idempotent producer with acks=all: no duplicates from its own retries, nothing acknowledged that
    the in-sync replicas did not all store. Short linger so batches form under load only."""
    options = dict(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
        metadata_max_age_ms=60000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def manual_commit_consumer(bootstrap: str, group_id: str, topics: Iterable[str], client_id: str, **overrides) -> AIOKafkaConsumer:
    """A consumer in `group_id` that starts from the beginning of a topic it never read and commits only
    when told to (after the effect is durable)."""
    options = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_interval_ms=300000,
        session_timeout_ms=30000,
        heartbeat_interval_ms=3000,
        metadata_max_age_ms=30000,
    )
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(
    bootstrap: str, topics: Iterable[str], *, partitions: int = 3, replication: int = 1, timeout: float = 30
) -> None:
    """Create the topics that do not exist yet (brokers here run with auto-creation off)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(name=t, num_partitions=partitions, replication_factor=replication) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", missing)
    finally:
        await admin.close()
