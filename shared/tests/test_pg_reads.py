"""Reads and pooled connections on PostgreSQL (shared/eventstore/database.py): a read (a poll, a look-up)
runs its statements on their own, with no BEGIN and ROLLBACK round trips around them; the connection it used
goes back to the pool as it came, so a write transaction on it afterwards is still one transaction (rolled
back whole on an error); and a connection returned to the pool with a transaction still open is rolled back
before anyone else gets it; one whose transaction SQLAlchemy's adapter did not see begin is discarded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, func, insert, select

from deploy.postgres.launcher import create_database
from shared.eventstore.database import Database
from shared.eventstore.lean import Prepared, query, write
from shared.eventstore.pg_driver import pg_driver
from shared.eventstore.tables import UtcDateTime, metadata
from shared.tests.conftest import database_with

own = MetaData()
marks = Table("marks", own, Column("k", Integer, primary_key=True), Column("at", UtcDateTime))
INSERT_MARK = Prepared(insert(marks), columns=["k"])
MARKS_SINCE = Prepared(
    select(marks.c.k, marks.c.at).where(marks.c.at >= bindparam("since", type_=UtcDateTime())).order_by(marks.c.k)
)


@pytest.fixture
async def db(postgres_server):
    url = await create_database(postgres_server, f"t_{uuid.uuid4().hex[:12]}")
    async with database_with(url, metadata, own) as database:
        yield database


async def driver_of(conn: Any) -> Any:
    """The asyncpg connection under a SQLAlchemy connection."""
    return (await conn.get_raw_connection()).driver_connection


async def marks_stored(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(marks))).scalar_one()


async def test_a_read_sends_its_statements_without_a_begin_and_a_rollback(db):
    sent: list[str] = []
    async with db.read() as conn:
        driver = await driver_of(conn)

        def log(record: Any) -> None:
            sent.append(record.query.strip().rstrip(";").upper())

        driver.add_query_logger(log)
        try:
            assert (await conn.execute(select(func.count()).select_from(marks))).scalar_one() == 0
            # The server's own word (ReadyForQuery): the statement ran and ended on its own.
            assert not driver.is_in_transaction()
        finally:
            driver.remove_query_logger(log)
    assert "BEGIN" not in sent and "ROLLBACK" not in sent
    assert not driver.is_in_transaction()


async def test_a_write_transaction_on_a_connection_a_read_used_is_still_one_transaction(db):
    async with db.read() as conn:
        read_on = await driver_of(conn)
        await conn.execute(select(func.count()).select_from(marks))
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            assert await driver_of(conn) is read_on  # the pool handed back the connection the read used
            await conn.execute(insert(marks).values(k=1))
            await write(conn, [(INSERT_MARK, {"k": 2})])
            assert (await driver_of(conn)).is_in_transaction()
            raise RuntimeError("the command failed after its writes")
    assert await marks_stored(db) == 0


async def test_a_connection_returned_with_its_transaction_open_is_rolled_back(db):
    conn = await db.engine.connect()
    await conn.begin()
    await write(conn, [(INSERT_MARK, {"k": 3})])  # the lean path (asyncpg) begins the transaction
    driver = await driver_of(conn)
    assert driver.is_in_transaction()
    await conn.close()  # neither committed nor rolled back by its user
    async with db.transaction() as again:
        assert await driver_of(again) is driver
        await again.execute(insert(marks).values(k=4))
    assert not driver.is_in_transaction()
    async with db.read() as conn:
        assert (await conn.execute(select(marks.c.k))).scalars().all() == [4]


async def test_a_transaction_begun_behind_the_adapters_back_is_not_handed_on(db):
    """The server has a transaction open that SQLAlchemy's adapter never saw begin: the connection is discarded
    on return, so what was written in it is not committed by the next user, and the next transaction is one."""
    conn = await db.engine.connect()
    driver = await driver_of(conn)
    await driver.execute("BEGIN")
    await driver.execute("INSERT INTO marks (k) VALUES (5)")
    await conn.close()
    assert driver.is_closed()
    async with db.transaction() as again:
        assert await driver_of(again) is not driver
        await write(again, [(INSERT_MARK, {"k": 6})])
    async with db.read() as conn:
        assert (await conn.execute(select(marks.c.k))).scalars().all() == [6]


async def test_a_connection_whose_begin_was_cancelled_is_discarded_and_the_next_command_commits(db):
    """As a task cancelled while its BEGIN was being answered leaves it: the adapter holds asyncpg's transaction
    but never marked it started, and asyncpg still counts it as its top transaction. Handed on (even after a
    ROLLBACK of the server's transaction), the next user's BEGIN would be a SAVEPOINT: inside nothing (every
    transaction fails) or inside the orphan (a commit that is only a RELEASE, lost later)."""
    conn = await db.engine.connect()
    fairy = await conn.get_raw_connection()
    adapter, driver = fairy.dbapi_connection, fairy.driver_connection
    adapter._transaction = driver.transaction()
    await adapter._transaction.start()  # BEGIN sent and answered; `_started` never set, as after a cancellation
    await driver.execute("INSERT INTO marks (k) VALUES (5)")
    await conn.close()
    assert driver.is_closed()
    async with db.transaction() as again:
        assert await driver_of(again) is not driver
        await again.execute(insert(marks).values(k=6))
    async with db.read() as conn:
        assert (await conn.execute(select(marks.c.k))).scalars().all() == [6]


async def test_a_look_up_on_a_read_connection_runs_on_the_driver_and_reads_what_sqlalchemy_reads(db):
    at = datetime(2026, 12, 2, 6, 10, 0, 123456, tzinfo=UTC)
    async with db.transaction() as conn:
        await conn.execute(insert(marks), [{"k": 7, "at": at}, {"k": 8, "at": None}])
    async with db.read() as conn:
        assert pg_driver(conn, reading=True) is not None  # the poll's path: asyncpg, no transaction
        assert pg_driver(conn) is None  # never a write: outside a transaction it would commit on its own
        await conn.execute(select(func.count()).select_from(marks))  # SQLAlchemy now says "in a transaction"
        assert conn.in_transaction() and pg_driver(conn) is None  # ... but each statement still commits alone
        lean_rows = await query(conn, MARKS_SINCE, {"since": at})
        through_sqlalchemy = [tuple(r) for r in await conn.execute(MARKS_SINCE.construct, {"since": at})]
        assert not (await driver_of(conn)).is_in_transaction()
    assert lean_rows == through_sqlalchemy == [(7, at)]
