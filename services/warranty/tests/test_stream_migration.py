"""Migration 0002 moves stored warranty events to namespaced streams, splitting a stream where a serial had
collided with a claim id, on SQLite and PostgreSQL."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.postgres.launcher import create_database
from shared.eventstore.tables import events
from shared.migrations import alembic_config

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def legacy_event(position: int, stream_id: str, stream_type: str, version: int, event_type: str) -> dict:
    return {
        "position": position,
        "event_id": str(uuid.uuid4()),
        "stream_id": stream_id,
        "stream_type": stream_type,
        "version": version,
        "type": event_type,
        "schema_version": 1,
        "topic": "warranty.events",
        "data": "{}",
        "occurred_at": T0,
        "recorded_at": T0,
        "correlation_id": "c",
        "causation_id": "c",
        "traceparent": None,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/warranty.db"
    return await create_database(request.getfixturevalue("postgres_server"), f"w_{uuid.uuid4().hex[:12]}")


async def test_stored_streams_move_to_their_namespaces_and_a_collided_stream_is_split(database_url):
    config = alembic_config("warranty", database_url)
    await asyncio.to_thread(command.upgrade, config, "warranty@0001")
    claim_id = str(uuid.uuid4())
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                events.insert(),
                [
                    legacy_event(1, claim_id, "claim", 1, "claim.submitted"),
                    legacy_event(2, "SN-1", "unit", 1, "product.registered"),
                    legacy_event(3, claim_id, "claim", 2, "claim.approved"),
                    legacy_event(4, claim_id, "unit", 3, "product.registered"),  # the collision
                    legacy_event(5, "REQ-1", "coverage_check", 1, "warranty.checked"),
                    legacy_event(6, "policy:tractor", "warranty_policy", 1, "warranty_policy.set"),
                ],
            )
            await conn.execute(text("INSERT INTO outbox (position) VALUES (4)"))
        await asyncio.to_thread(command.upgrade, config, "heads")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(events.c.position, events.c.stream_id, events.c.version).order_by(events.c.position)
                )
            ).all()
            due = (await conn.execute(text("SELECT position FROM outbox"))).scalars().all()
        assert [tuple(r) for r in rows] == [
            (1, f"claim:{claim_id}", 1),
            (2, "product:SN-1", 1),
            (3, f"claim:{claim_id}", 2),
            (4, f"product:{claim_id}", 1),
            (5, "coverage:REQ-1", 1),
            (6, "policy:tractor", 1),
        ]
        assert due == [4], "the outbox still names the event by its position"
    finally:
        await engine.dispose()
