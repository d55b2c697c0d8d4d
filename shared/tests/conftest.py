"""The storage and messaging suites run on SQLite and on PostgreSQL (a server from Debian's packages started
once per session, or TEST_POSTGRES_URL); each test gets a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import MetaData

from deploy.postgres.launcher import create_database
from shared.auth import TokenVerifier
from shared.eventstore import Database
from shared.eventstore.tables import metadata as event_store_tables


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


@asynccontextmanager
async def database_with(url: str, *schemas: MetaData) -> AsyncIterator[Database]:
    """A `Database` on `url` with the tables of `schemas` created, disposed of afterwards."""
    database = Database(url)
    for schema in schemas:
        await database.create_all(schema)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def db(database_url):
    """The test's database with the event store's tables (events, outbox, deadlines, leases…)."""
    async with database_with(database_url, event_store_tables) as database:
        yield database


SECRET = "test-secret-that-is-long-enough-32b"


class CountingVerifier(TokenVerifier):
    """A token verifier that counts the verifications it makes (a cache of verified tokens must skip them)."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.verified = 0

    def verify(self, token: str):  # type: ignore[no-untyped-def]
        self.verified += 1
        return super().verify(token)
