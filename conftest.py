"""Session-wide fixtures: one real Kafka broker for the whole test session (KAFKA_BOOTSTRAP, a Docker
container when an engine answers, or Apache Kafka's own jars on loopback), with the contract's topics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from deploy.kafka.launcher import broker_for_tests
from deploy.postgres.launcher import postgres_for_tests
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.kafka import ensure_topics


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with broker_for_tests() as bootstrap:
        asyncio.run(ensure_topics(bootstrap, ALL_TOPICS, partitions=3))
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session (TEST_POSTGRES_URL, or Debian's binaries on a free port)."""
    with postgres_for_tests() as url:
        yield url


@pytest.fixture(scope="session")
def recorded_spans():
    """Record every span of the session in memory (the process-wide tracer provider can be set only once)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
