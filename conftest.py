"""Session-wide fixtures: one real Kafka broker for the whole test session (KAFKA_BOOTSTRAP, a Docker
container when an engine answers, or Apache Kafka's own jars on loopback), with the contract's topics."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from deploy.kafka.launcher import broker_for_tests
from deploy.postgres.launcher import postgres_for_tests
from shared.contracts.topics import ALL_TOPICS
from shared.messaging import memory
from shared.messaging.kafka import ensure_topics

# `make test-fast` runs the property tests under this profile: a tenth of their examples
# (`shared.testing.properties.examples`); `make test` keeps Hypothesis' default profile and every count in full.
settings.register_profile("fast", max_examples=10)

# The tiers: a test is marked by the real servers it uses, read from its fixtures, so that the fast tier
# (`pytest -m "not kafka and not postgres and not browser"`) needs no marker kept by hand.
# `own_broker`: a test's own Kafka broker (a stall or an outage it causes must not hit the session's).
_SERVER_FIXTURES = {"kafka_bootstrap": "kafka", "own_broker": "kafka", "postgres_server": "postgres"}


@pytest.hookimpl(tryfirst=True)  # before the mark plugin deselects by -m
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, marker in _SERVER_FIXTURES.items():
            if fixture in names:
                item.add_marker(marker)
        callspec = getattr(item, "callspec", None)
        # Suites parametrized over the backends (or the transports) ask for the server lazily (getfixturevalue).
        params = [str(v) for v in callspec.params.values()] if callspec is not None else []
        if "postgresql" in params:
            item.add_marker("postgres")
        if "kafka" in params:
            item.add_marker("kafka")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection made (every module, class and function the tests import: ~190,000 objects) out of
    the garbage collector's sight: each full collection during the run, and pytest's at the session's end, no
    longer walks them (they live until the process ends anyway). About half of a worker's full-collection time."""
    gc.freeze()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with broker_for_tests() as bootstrap:
        asyncio.run(ensure_topics(bootstrap, ALL_TOPICS, partitions=3))
        yield bootstrap


@pytest.fixture(scope="session")
def event_bus() -> Iterator[str]:
    """The bootstrap address of an in-process broker for the session (`shared.messaging.memory`), with the
    contract's topics: services, `publish` and `collect` take it where they take `kafka_bootstrap`. Tests on it
    stay in the fast tier; a module that wants real Kafka overrides it (`def event_bus(kafka_bootstrap)`)."""
    bootstrap = f"{memory.SCHEME}session-{uuid.uuid4().hex[:8]}"
    memory.broker_for(bootstrap).create_topics(ALL_TOPICS, partitions=3)
    yield bootstrap
    memory.forget(bootstrap)


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
