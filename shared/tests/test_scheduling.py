"""Durable deadlines on a real SQLite database: each fires once when due, never when cancelled, and not
again after a restart or with a second scheduler."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from shared.clock import FixedClock
from shared.eventstore.tables import metadata
from shared.scheduling import DeadlineScheduler, cancel, schedule
from shared.testing.app import eventually
from shared.tests.conftest import database_with

fired_table = Table("fired", MetaData(), Column("seq", Integer, primary_key=True), Column("name", String(160)))
T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url):
    async with database_with(database_url, metadata, fired_table.metadata) as database:
        yield database


async def record(deadline, conn):
    await conn.execute(insert(fired_table).values(name=deadline.name))


async def fired_names(db):
    async with db.read() as conn:
        return sorted(r.name for r in await conn.execute(select(fired_table.c.name)))


async def test_a_deadline_fires_once_when_due_and_a_cancelled_one_never(db):
    async with db.transaction() as conn:
        await schedule(conn, stream_id="job-1", kind="accept", due_at=T0 + timedelta(minutes=30))
        await schedule(conn, stream_id="job-1", kind="arrive", due_at=T0 + timedelta(hours=4))
        await schedule(conn, stream_id="job-2", kind="accept", due_at=T0 + timedelta(minutes=30))
        await cancel(conn, stream_id="job-2", kind="accept")
    clock = FixedClock(T0 + timedelta(minutes=29, seconds=59))
    scheduler = DeadlineScheduler(db, record, source="test", clock=clock)
    assert await scheduler.fire_due() == 0
    clock.advance(seconds=1)
    assert await scheduler.fire_due() == 1, "exactly on the deadline it is due"
    assert await scheduler.fire_due() == 0
    restarted = DeadlineScheduler(db, record, source="test", clock=clock)
    assert await restarted.fire_due() == 0, "a restart does not fire it again"
    assert await fired_names(db) == ["job-1:accept"]


async def test_a_handler_that_fails_leaves_the_deadline_pending_for_the_next_round(db):
    async with db.transaction() as conn:
        await schedule(conn, stream_id="c-1", kind="ack", due_at=T0)
    attempts = []

    async def flaky(deadline, conn):
        attempts.append(deadline.name)
        if len(attempts) == 1:
            raise RuntimeError("aggregate busy")
        await record(deadline, conn)

    scheduler = DeadlineScheduler(db, flaky, source="test", clock=FixedClock(T0))
    assert await scheduler.fire_due() == 0
    assert await scheduler.fire_due() == 1
    assert await fired_names(db) == ["c-1:ack"]


async def test_two_scheduler_replicas_fire_each_deadline_once(db):
    async with db.transaction() as conn:
        for i in range(20):
            await schedule(conn, stream_id=f"j{i}", kind="accept", due_at=T0 - timedelta(seconds=i))
    clock = FixedClock(T0)
    replicas = [DeadlineScheduler(db, record, source="test", clock=clock, poll_interval=0.02) for _ in range(2)]
    tasks = [asyncio.create_task(r.run()) for r in replicas]
    for _ in range(100):
        if len(await fired_names(db)) == 20:
            break
        await asyncio.sleep(0.05)
    for replica in replicas:
        await replica.stop()
    await asyncio.gather(*tasks)
    names = await fired_names(db)
    assert len(names) == len(set(names)) == 20
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(fired_table))).scalar_one() == 20


async def test_a_running_scheduler_fires_a_deadline_as_soon_as_a_test_clock_jumps_past_it(db):
    async with db.transaction() as conn:
        await schedule(conn, stream_id="job-1", kind="accept", due_at=T0 + timedelta(minutes=30))
    clock = FixedClock(T0)
    scheduler = DeadlineScheduler(db, record, source="test", clock=clock, poll_interval=600)  # no poll would see it
    task = asyncio.create_task(scheduler.run())
    try:
        await eventually(lambda: asyncio.sleep(0, scheduler.rounds), until=bool, timeout=5)  # asleep for 10 min
        assert await fired_names(db) == []
        clock.advance(minutes=30)
        assert await eventually(lambda: fired_names(db), until=bool, timeout=5) == ["job-1:accept"]
    finally:
        await scheduler.stop()
        await asyncio.wait_for(task, 5)
