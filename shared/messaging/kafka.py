"""aiokafka with the settings Servicetrail needs, in one place (the library's defaults are weak for us).

A `memory://<name>` bootstrap address gives the in-process broker's producers and consumers instead
(`shared.messaging.memory`, the fast test tier): everything that reaches Kafka goes through these functions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from shared.messaging import memory

log = logging.getLogger(__name__)


def reliable_producer(bootstrap: str, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """Idempotent producer with acks=all: no duplicates from its own retries, nothing acknowledged that
    the in-sync replicas did not all store. Short linger so batches form under load only."""
    options: dict[str, Any] = dict(
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
    if memory.is_memory(bootstrap):
        return memory.InMemoryProducer(
            memory.broker_for(bootstrap),
            client_id,
            max_batch_size=int(options["max_batch_size"]),
            max_request_size=int(options.get("max_request_size", memory.MAX_REQUEST_SIZE)),
        )
    return AIOKafkaProducer(**options)


def manual_commit_consumer(
    bootstrap: str, group_id: str, topics: Iterable[str], client_id: str, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer in `group_id` that starts from the beginning of a topic it never read and commits only
    when told to (after the effect is durable)."""
    options: dict[str, Any] = dict(
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
    return plain_consumer(bootstrap, *topics, **options)


def plain_consumer(bootstrap: str, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An `AIOKafkaConsumer` with exactly these options (or the in-memory broker's, for `memory://`)."""
    if memory.is_memory(bootstrap):
        return memory.InMemoryConsumer(memory.broker_for(bootstrap), *topics, **options)
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, **options)


_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int = 3,
    replication: int = 1,
    min_insync_replicas: int | None = None,
    timeout: float = 30,
) -> None:
    """Create the topics that do not exist yet (brokers here run with auto-creation off) with `replication`
    replicas per partition and, when given, `min.insync.replicas`; a topic the cluster refuses to create (more
    replicas than brokers, say) raises with the broker's reason. An existing topic with fewer replicas (or a
    lower min.insync.replicas) than configured is logged as a warning: Kafka cannot raise it in place, ops must
    reassign its partitions."""
    topics = list(topics)
    if memory.is_memory(bootstrap):
        memory.broker_for(bootstrap).create_topics(topics, partitions)
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            configs = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
            try:
                response = await admin.create_topics(
                    [
                        NewTopic(
                            name=t, num_partitions=partitions, replication_factor=replication, topic_configs=configs
                        )
                        for t in missing
                    ]
                )
            except TopicAlreadyExistsError:
                response = None
            refused = {
                entry[0]: entry[2] if len(entry) > 2 and entry[2] else f"error code {entry[1]}"
                for entry in (response.topic_errors if response is not None else [])
                if entry[1] not in (0, _TOPIC_ALREADY_EXISTS)
            }
            if refused:
                raise RuntimeError(
                    "Kafka refused to create topics with replication factor "
                    f"{replication}: " + "; ".join(f"{t}: {why}" for t, why in refused.items())
                )
            log.info(
                "created topics %s (replication factor %d, min.insync.replicas %s)",
                missing,
                replication,
                min_insync_replicas or "the broker's default",
            )
        present = [t for t in topics if t in existing]
        if present:
            await _warn_about_weaker_topics(admin, present, replication, min_insync_replicas)
    finally:
        await admin.close()


async def _warn_about_weaker_topics(
    admin: AIOKafkaAdminClient, topics: list[str], replication: int, min_insync_replicas: int | None
) -> None:
    for described in await admin.describe_topics(topics):
        partitions = described.get("partitions") or []
        replicas = min((len(p["replicas"]) for p in partitions), default=0)
        if partitions and replicas < replication:
            log.warning(
                "topic %s has %d replica(s) per partition, fewer than KAFKA_REPLICATION_FACTOR=%d; "
                "reassign its partitions to reach it",
                described["topic"],
                replicas,
                replication,
            )
    if not min_insync_replicas:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, t, {"min.insync.replicas": None}) for t in topics]
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            for entry in entries:
                if entry[0] == "min.insync.replicas" and int(entry[1]) < min_insync_replicas:
                    log.warning(
                        "topic %s has min.insync.replicas=%s, lower than KAFKA_MIN_INSYNC_REPLICAS=%d",
                        name,
                        entry[1],
                        min_insync_replicas,
                    )
