"""Group commit on SQLite: write transactions queued together share one COMMIT, each in its own savepoint; one
member's failure leaves the others' writes alone; nobody returns before the COMMIT that covers its writes; a
COMMIT that fails fails every member of its group and stores none of them."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, text
from sqlalchemy.exc import IntegrityError

from shared.eventstore.database import Database
from shared.eventstore.group_commit import _WriterQueue

metadata = MetaData()
rows = Table("rows", metadata, Column("k", Integer, primary_key=True), Column("who", String, nullable=False))


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/group.db", group_commit_limit=64)
    await database.create_all(metadata)
    async with database.engine.begin() as conn:
        # A deferred foreign key is checked at COMMIT: the one way to make a COMMIT itself fail on SQLite.
        await conn.execute(text("CREATE TABLE parents (id INTEGER PRIMARY KEY)"))
        await conn.execute(
            text(
                "CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER "
                "REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield database
    await database.dispose()


def stored(db: Database, table: str = "rows") -> list[tuple]:
    """What another connection reads from the file: only what a COMMIT made durable."""
    with sqlite3.connect(db.url.database) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


async def write(db: Database, k: int, *, fail: Exception | None = None, seen: dict | None = None) -> int:
    async with db.transaction() as conn:
        await conn.execute(insert(rows).values(k=k, who=f"writer {k}"))
        await asyncio.sleep(0)  # let the others queue behind this one
        if fail is not None:
            raise fail
    if seen is not None:
        seen[k] = stored(db)
    return k


async def test_writers_queued_together_share_one_commit_and_each_sees_its_row_durable_when_it_returns(db):
    seen: dict[int, list] = {}
    assert await asyncio.gather(*(write(db, k, seen=seen) for k in range(20))) == list(range(20))
    assert [k for k, _ in stored(db)] == list(range(20))
    assert db.group_commit is not None and db.group_commit.members == 20
    assert db.group_commit.groups < 20, "nothing was grouped"
    for k, durable in seen.items():
        assert (k, f"writer {k}") in durable, f"writer {k} returned before its row was committed"


async def test_one_member_failing_rolls_back_its_own_writes_only(db):
    outcomes = await asyncio.gather(
        *(write(db, k, fail=ValueError("refused") if k == 3 else None) for k in range(8)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    assert [k for k, _ in stored(db)] == [0, 1, 2, 4, 5, 6, 7]
    assert db.group_commit is not None and db.group_commit.groups < 7


async def test_a_member_that_breaks_a_constraint_does_not_touch_the_others_of_its_group(db):
    async def duplicate() -> None:
        async with db.transaction() as conn:
            await conn.execute(insert(rows).values(k=100, who="second"))

    await write(db, 100)
    outcomes = await asyncio.gather(write(db, 1), duplicate(), write(db, 2), return_exceptions=True)
    assert outcomes[0] == 1 and isinstance(outcomes[1], IntegrityError) and outcomes[2] == 2
    assert stored(db) == [(1, "writer 1"), (2, "writer 2"), (100, "writer 100")]


async def test_a_commit_that_fails_fails_every_member_of_its_group_and_stores_none_of_them(db):
    async def orphan() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO children VALUES (1, 999)"))  # no parent 999: fails at COMMIT

    outcomes = await asyncio.gather(write(db, 1), orphan(), write(db, 2), return_exceptions=True)
    assert all(isinstance(o, IntegrityError) for o in outcomes), outcomes
    assert stored(db) == [] and stored(db, "children") == []
    assert await write(db, 3) == 3  # the next group is a fresh transaction
    assert stored(db) == [(3, "writer 3")]


async def test_a_writer_that_gives_up_after_the_one_before_it_left_the_group_open_cannot_strand_it(db):
    """The first member leaves its group open for the writer queued behind it; that writer is cancelled
    before it runs. The group's flusher, queued behind it, still commits, so the first member returns."""

    async def first() -> int:
        async with db.transaction() as conn:
            await conn.execute(insert(rows).values(k=1, who="first"))
            await asyncio.sleep(0.05)  # the second queues meanwhile
        return 1

    leaving = asyncio.ensure_future(first())
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(write(db, 2))
    group_commit = db.group_commit
    assert group_commit is not None
    # The first member joins its group and releases the lock in one step of the loop: once it is in the group,
    # the lock has passed to the queued writer, and the group is open, waiting for it.
    while not (group_commit._open is not None and group_commit._open.members):
        await asyncio.sleep(0)
    queued.cancel()
    assert await asyncio.wait_for(leaving, 5) == 1
    assert stored(db) == [(1, "first")]
    assert queued.cancelled()


async def test_group_commit_limit_1_commits_every_transaction_by_itself(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/single.db", group_commit_limit=1)
    try:
        await database.create_all(metadata)
        assert database.group_commit is None
        assert await asyncio.gather(*(write(database, k) for k in range(5))) == list(range(5))
        assert [k for k, _ in stored(database)] == list(range(5))
    finally:
        await database.dispose()


def test_group_commit_is_sqlite_only():
    assert Database("postgresql+asyncpg://u:p@localhost/db").group_commit is None


async def test_the_writer_is_handed_over_in_arrival_order_and_a_waiter_past_its_deadline_fails_alone():
    queue = _WriterQueue(timeout=0.3)
    order: list[str] = []

    async def writer(name: str, hold: float = 0.0) -> str:
        await queue.acquire()
        try:
            order.append(name)
            await asyncio.sleep(hold)
        finally:
            queue.release()
        return name

    holder = asyncio.ensure_future(writer("holder", hold=0.6))  # holds the writer past the others' deadline
    await asyncio.sleep(0)
    late = [asyncio.ensure_future(writer(f"w{i}")) for i in range(3)]
    results = await asyncio.gather(holder, *late, return_exceptions=True)
    assert results[0] == "holder"
    assert all(isinstance(r, TimeoutError) for r in results[1:]), results
    assert order == ["holder"] and not queue.held and queue.waiting == 0
    assert await asyncio.gather(*(writer(f"v{i}") for i in range(5))) == [f"v{i}" for i in range(5)]
    assert order[1:] == [f"v{i}" for i in range(5)]


async def test_a_waiter_cancelled_after_it_was_handed_the_writer_passes_it_on():
    queue = _WriterQueue(timeout=5)
    await queue.acquire()
    handed = asyncio.ensure_future(queue.acquire())
    behind = asyncio.ensure_future(queue.acquire())
    await asyncio.sleep(0)
    queue.release()  # handed to the first waiter, which is cancelled before it runs
    handed.cancel()
    await asyncio.wait_for(behind, 1)
    assert handed.cancelled() and queue.held and queue.waiting == 0
    queue.release()
    assert not queue.held


async def test_a_members_release_rides_on_the_next_trip_and_if_it_fails_there_the_group_stores_nothing(db):
    """A member's RELEASE is deferred to the next trip to the writer. Should a deferred savepoint statement fail
    there, the member whose trip it was fails without touching the earlier member's savepoint, and the group
    refuses to commit: every member fails, none is stored (no 201 for a write that is not there)."""
    from shared.eventstore.lean import lean_driver

    async def poisoned() -> None:
        async with db.transaction() as conn:
            await conn.execute(insert(rows).values(k=2, who="poisoned"))
            driver = lean_driver(conn)
            assert driver is not None
            driver.defer("RELEASE no_such_savepoint")  # fails on the next trip, as a failed RELEASE would

    outcomes = await asyncio.gather(write(db, 1), poisoned(), write(db, 3), return_exceptions=True)
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    assert stored(db) == []
    assert await write(db, 4) == 4  # the next group is a fresh transaction
    assert stored(db) == [(4, "writer 4")]


async def test_a_deferred_write_that_fails_fails_its_own_member_only_and_the_group_commits_the_others(db):
    """A write left for the next trip (`lean.write_later`, as a consumer's reaction does) that fails there is an
    error of the member whose transaction wrote it: that member rolls back, and the group still commits the
    others. (Only a failed savepoint statement, above, makes the group refuse.)"""
    from shared.eventstore import lean

    broken = lean.Prepared(insert(rows), columns=["k", "who"])

    async def duplicate_later() -> None:
        async with db.transaction() as conn:
            await lean.write_later(conn, [(broken, {"k": 100, "who": "second"})])  # k=100 is taken
            await conn.execute(insert(rows).values(k=5, who="after the deferred write"))  # the trip that runs it

    await write(db, 100)
    outcomes = await asyncio.gather(write(db, 1), duplicate_later(), write(db, 2), return_exceptions=True)
    assert outcomes[0] == 1 and isinstance(outcomes[1], Exception) and outcomes[2] == 2, outcomes
    assert stored(db) == [(1, "writer 1"), (2, "writer 2"), (100, "writer 100")]
