"""The event store on a real SQLite database: optimistic concurrency per stream, and the outbox row of every
event written in the same transaction as the event itself."""

import asyncio

import pytest
from sqlalchemy import func, select

from shared.eventstore import ConcurrencyError, EventStore
from shared.eventstore.tables import events, outbox
from shared.testing.escalations import append_escalations

STORE = EventStore(source="test")


async def count(db, table) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_appended_events_are_read_back_in_order_with_their_times(db):
    async with db.transaction() as conn:
        stored = await append_escalations(conn, STORE, "s1", ["a", "b"])
    assert [e.sequence for e in stored] == [1, 2]
    async with db.read() as conn:
        history = await STORE.load(conn, "s1")
    assert [data.reason for data, _ in history] == ["a", "b"]
    assert all(at.tzinfo is not None for _, at in history)


async def test_an_append_on_a_stale_version_is_refused_and_leaves_nothing_behind(db):
    async with db.transaction() as conn:
        await append_escalations(conn, STORE, "s2", ["first"])
    with pytest.raises(ConcurrencyError):
        async with db.transaction() as conn:
            await append_escalations(conn, STORE, "s2", ["stale"])
    assert await count(db, events) == 1
    assert await count(db, outbox) == 1


async def test_concurrent_writers_that_read_the_same_version_cannot_both_append(db):
    async with db.transaction() as conn:
        await append_escalations(conn, STORE, "s3", ["v1"])

    async def writer(reason: str) -> str:
        try:
            async with db.transaction() as conn:
                await append_escalations(conn, STORE, "s3", [reason], expected_version=1)
            return "ok"
        except ConcurrencyError:
            return "conflict"

    outcomes = await asyncio.gather(*(writer(f"w{i}") for i in range(5)))
    assert sorted(outcomes) == ["conflict"] * 4 + ["ok"]
    async with db.read() as conn:
        assert len(await STORE.load(conn, "s3")) == 2


async def test_a_transaction_that_fails_after_appending_leaves_neither_events_nor_outbox_rows(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await append_escalations(conn, STORE, "s4", ["x"])
            raise RuntimeError("the read model update failed")
    assert await count(db, events) == 0
    assert await count(db, outbox) == 0


async def test_every_appended_event_is_due_for_publication(db):
    async with db.transaction() as conn:
        stored = await append_escalations(conn, STORE, "s5", [str(i) for i in range(3)])
    async with db.read() as conn:
        due = [r.position for r in await conn.execute(select(outbox.c.position).order_by(outbox.c.position))]
    assert due == [e.position for e in stored]
