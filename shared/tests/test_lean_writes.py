"""The lean statement path of the hot writes (shared/eventstore/lean.py): what it appends reads back exactly as it
was returned, its rows are stored as SQLAlchemy stores them, a refused statement is SQLAlchemy's IntegrityError
and leaves the transaction usable, and a stream's deadlines are found by an index, not by a scan."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from shared.clock import utcnow
from shared.eventstore import Database, EventStore
from shared.eventstore.lean import Prepared, lean_driver, write
from shared.eventstore.store import new_metadata
from shared.eventstore.tables import events, metadata
from shared.kernel.unit_of_work import _PENDING_KINDS, reconcile_deadlines
from shared.scheduling import deadlines
from shared.testing.escalations import append_escalations
from shared.tests.conftest import database_with

STORE = EventStore(source="test")

own = MetaData()
pairs = Table("pairs", own, Column("k", Integer, primary_key=True), Column("v", String(20), nullable=False))
INSERT_PAIR = Prepared(insert(pairs), columns=["k", "v"])


@pytest.fixture
async def db(database_url):
    async with database_with(database_url, metadata, own) as database:
        yield database


def five_minutes_ago() -> datetime:
    """The events' business time: before their recorded time, so a column written in the other's place shows."""
    return utcnow() - timedelta(minutes=5)


async def test_an_append_returns_its_events_exactly_as_they_read_back(db):
    async with db.transaction() as conn:
        await append_escalations(conn, STORE, "other", ["first"], at=five_minutes_ago())
    async with db.transaction() as conn:
        appended = await append_escalations(
            conn,
            STORE,
            "s1",
            ["a", "b"],
            at=five_minutes_ago(),
            metadata=new_metadata(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
    async with db.read() as conn:
        stored = await STORE.read_all(conn)
    assert appended == stored[1:]
    assert [e.position for e in appended] == [2, 3]
    assert all(e.time.tzinfo is not None and e.recordedat.tzinfo is not None for e in appended)


async def test_the_lean_path_stores_an_event_row_as_sqlalchemy_does(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/same.db")
    await database.create_all(metadata)
    try:
        async with database.transaction() as conn:
            assert lean_driver(conn) is not None  # the append below takes the lean path
            [lean] = await append_escalations(conn, STORE, "lean", ["x"], at=five_minutes_ago())
            row = {c.key: v for c, v in zip(events.c, await _row_of(conn, lean.position), strict=True)}
            await conn.execute(insert(events), {**row, "position": None, "event_id": "by-sqlalchemy", "version": 2})
    finally:
        await database.dispose()
    with sqlite3.connect(database.url.database) as raw:
        lean_row, sqlalchemy_row = raw.execute("SELECT * FROM events ORDER BY position").fetchall()
    differing = [c.key for c, a, b in zip(events.c, lean_row, sqlalchemy_row, strict=True) if a != b]
    assert differing == ["position", "event_id", "version"]


async def _row_of(conn, position):
    return (await conn.execute(select(events).where(events.c.position == position))).one()


@pytest.fixture
async def sqlite_db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/lean.db")
    await database.create_all(metadata)
    await database.create_all(own)
    yield database
    await database.dispose()


async def test_a_refused_lean_write_is_an_integrity_error_and_the_transaction_goes_on(sqlite_db):
    db = sqlite_db
    async with db.transaction() as conn:
        await write(conn, [(INSERT_PAIR, {"k": 1, "v": "kept"})])
        with pytest.raises(IntegrityError):
            await write(conn, [(INSERT_PAIR, [{"k": 2, "v": "before"}]), (INSERT_PAIR, {"k": 1, "v": "duplicate"})])
        await write(conn, [(INSERT_PAIR, [{"k": 3, "v": "after"}, {"k": 4, "v": "after"}])])
    async with db.read() as conn:
        kept = (await conn.execute(select(pairs.c.k, pairs.c.v).order_by(pairs.c.k))).all()
    # The statement that broke the key wrote nothing; the rest committed (as statement by statement on SQLite).
    assert [tuple(r) for r in kept] == [(1, "kept"), (2, "before"), (3, "after"), (4, "after")]


async def test_a_statement_naming_one_parameter_twice_binds_it_at_both_places(sqlite_db):
    both = Prepared(text("INSERT INTO pairs (k, v) SELECT :k, :v WHERE :k > 0"))
    async with sqlite_db.transaction() as conn:
        await write(conn, [(both, {"k": 5, "v": "twice"}), (both, {"k": -1, "v": "never"})])
    async with sqlite_db.read() as conn:
        stored = (await conn.execute(select(pairs.c.k, pairs.c.v))).all()
    assert [tuple(r) for r in stored] == [(5, "twice")]


async def test_outside_a_transaction_the_lean_path_is_not_taken(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/idle.db")
    try:
        async with database.engine.connect() as conn:
            assert lean_driver(conn) is None  # sqlite3 would autocommit each statement on its own
            async with conn.begin():
                assert lean_driver(conn) is not None
    finally:
        await database.dispose()


async def test_reconciling_deadlines_keeps_exactly_the_wanted_ones_pending(db):
    due = utcnow() + timedelta(hours=1)
    async with db.transaction() as conn:
        await reconcile_deadlines(conn, "s1", {"respond": due, "arrive": due})
        await reconcile_deadlines(conn, "s2", {"respond": due})
    async with db.transaction() as conn:
        await reconcile_deadlines(conn, "s1", {"respond": due + timedelta(hours=1), "close": due})
    async with db.read() as conn:
        rows = (await conn.execute(select(deadlines.c.name, deadlines.c.state, deadlines.c.due_at))).all()
    by_name = {r.name: (r.state, r.due_at) for r in rows}
    assert by_name == {
        "s1:respond": ("pending", due + timedelta(hours=1)),
        "s1:arrive": ("cancelled", due),
        "s1:close": ("pending", due),
        "s2:respond": ("pending", due),
    }


async def test_a_streams_pending_deadlines_are_found_by_an_index_not_a_scan(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/plan.db")
    await database.create_all(metadata)
    try:
        async with database.read() as conn:
            compiled = _PENDING_KINDS.compiled(conn.dialect)
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.sql}", ("s1", "pending"))).all()
    finally:
        await database.dispose()
    assert any("ix_deadlines_stream" in str(step) for step in plan), plan


async def test_group_members_that_write_nothing_leave_no_savepoint_behind(tmp_path):
    """A member's SAVEPOINT waits for its first statement, and a member that runs none takes it back. In one
    group: writers, a member that fails before writing, one with nothing to write, one that fails after writing.
    Only the successful writers' rows commit, and the next group starts clean."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/members.db", group_commit_limit=64)
    await database.create_all(own)

    async def member(k: int, *, writes: bool, fails: bool) -> str:
        async with database.transaction() as conn:
            if writes:
                await write(conn, [(INSERT_PAIR, {"k": k, "v": f"member {k}"})])
            if fails:
                raise ValueError(f"member {k} refused")
        return "ok"

    try:
        plan = [(1, True, False), (2, False, True), (3, False, False), (4, True, True), (5, True, False)]
        outcomes = await asyncio.gather(*(member(k, writes=w, fails=f) for k, w, f in plan), return_exceptions=True)
        assert [o if isinstance(o, str) else "refused" for o in outcomes] == ["ok", "refused", "ok", "refused", "ok"]
        assert database.group_commit is not None and database.group_commit.groups < 5, "nothing was grouped"
        assert await member(6, writes=True, fails=False) == "ok"  # a stray SAVEPOINT would break this BEGIN
    finally:
        await database.dispose()
    with sqlite3.connect(database.url.database) as raw:
        assert raw.execute("SELECT k FROM pairs ORDER BY k").fetchall() == [(1,), (5,), (6,)]
