"""The storage and messaging suites run on SQLite and on PostgreSQL (a server from Debian's packages started
once per session, or TEST_POSTGRES_URL); each test gets a database of its own."""

from __future__ import annotations

import uuid

import pytest

from deploy.postgres.launcher import create_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/test.db"
    server = request.getfixturevalue("postgres_server")
    return await create_database(server, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["memory", "kafka"])
def broker(request) -> str:
    """The bootstrap address of the in-process broker and of the session's real Kafka: the relay and consumer
    suites run on both, which is what shows the fast tier's transport behaves as Kafka does for them."""
    return request.getfixturevalue("event_bus" if request.param == "memory" else "kafka_bootstrap")
