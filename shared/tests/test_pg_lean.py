"""The lean statement path on PostgreSQL (shared/eventstore/pg_driver.py): the hot writes run on the asyncpg
connection SQLAlchemy holds, in its transaction. An append stores exactly the rows the SQLAlchemy path stores
and returns the same envelopes; a lost race is a ConcurrencyError with nothing of the append left and the
transaction still usable; a lean write that comes first in a transaction commits and rolls back with it; a
refused write is SQLAlchemy's IntegrityError; look-ups hand out the values SQLAlchemy hands out; a pooled
connection the server closed is replaced on checkout (no pre-ping round trips) without failing a request."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError

import shared.eventstore.pg_driver as pg_driver_module
import shared.eventstore.store as store_module
from deploy.postgres.launcher import create_database
from shared.eventstore import ConcurrencyError, NewEvent
from shared.eventstore.lean import Prepared, query, update_else_insert, write
from shared.eventstore.pg_driver import pg_driver
from shared.eventstore.tables import UtcDateTime, events, metadata
from shared.kernel.unit_of_work import reconcile_deadlines
from shared.scheduling import deadlines
from shared.testing.escalations import escalation
from shared.tests.conftest import database_with
from shared.tests.test_append_rows import OCCURRED_AT, RECORDED_AT
from shared.tests.test_append_rows import append_to_pin as append

own = MetaData()
pairs = Table(
    "pairs",
    own,
    Column("k", Integer, primary_key=True),
    Column("v", String(20), nullable=False),
    Column("at", UtcDateTime),
)
INSERT_PAIR = Prepared(insert(pairs), columns=["k", "v", "at"])


async def new_database(server: str, *schemas: MetaData):
    return database_with(await create_database(server, f"t_{uuid.uuid4().hex[:12]}"), *schemas)


@pytest.fixture
async def db(postgres_server):
    async with await new_database(postgres_server, metadata, own) as database:
        yield database


class FixedRandomness:
    """`os.urandom(16)` as a fixed sequence (the event ids), restarted by `restart()`; the recording time fixed."""

    def __init__(self, monkeypatch) -> None:
        real_urandom = os.urandom
        self.drawn = 0
        self.on = False  # until `restart()`: the test's databases are named from real randomness
        monkeypatch.setattr(os, "urandom", lambda n: self._next() if n == 16 and self.on else real_urandom(n))
        monkeypatch.setattr(store_module, "utcnow", lambda: RECORDED_AT)

    def _next(self) -> bytes:
        self.drawn += 1
        return bytes((0xA0 + self.drawn + i) % 256 for i in range(16))

    def restart(self) -> None:
        self.drawn, self.on = 0, True


@pytest.fixture
def fixed_randomness_and_clock(monkeypatch) -> FixedRandomness:
    return FixedRandomness(monkeypatch)


def escalations(*reasons: str) -> list[NewEvent]:
    return [escalation("SR-PIN", r, OCCURRED_AT) for r in reasons]


async def stored_text(database) -> tuple[list[tuple], list[tuple]]:
    """Every events and outbox row, each column as PostgreSQL prints it (its stored value, not a decoding)."""
    columns = ", ".join(f"{c.name}::text" for c in events.c)
    async with database.read() as conn:
        found = (await conn.execute(text(f"SELECT {columns} FROM events ORDER BY position"))).all()  # noqa: S608
        boxed = (await conn.execute(text("SELECT position::text FROM outbox ORDER BY position"))).all()
    return [tuple(r) for r in found], [tuple(r) for r in boxed]


async def test_the_lean_append_stores_and_returns_what_the_sqlalchemy_append_does(
    postgres_server, fixed_randomness_and_clock, monkeypatch
):
    results = {}
    for path in ("lean", "sqlalchemy"):
        async with await new_database(postgres_server, metadata) as database:
            fixed_randomness_and_clock.restart()
            with monkeypatch.context() as patched:
                if path == "sqlalchemy":
                    patched.setattr(pg_driver_module, "pg_driver", lambda conn: None)
                async with database.transaction() as conn:
                    assert (pg_driver_module.pg_driver(conn) is not None) == (path == "lean")
                    first = await append(conn, 0, escalations("customer called twice"))
                    more = await append(conn, 1, escalations("and again", "and a third time"))
            results[path] = (first + more, await stored_text(database))
    (lean_returned, lean_rows), (sqlalchemy_returned, sqlalchemy_rows) = results["lean"], results["sqlalchemy"]
    assert lean_rows == sqlalchemy_rows
    assert [(r[0], r[4]) for r in lean_rows[0]] == [("1", "1"), ("2", "2"), ("3", "3")]  # positions follow versions
    assert lean_rows[1] == [("1",), ("2",), ("3",)]
    assert lean_returned == sqlalchemy_returned
    assert [e.position for e in lean_returned] == [1, 2, 3]


async def test_a_lost_race_is_a_concurrency_error_with_nothing_stored_and_the_transaction_goes_on(db):
    async with db.transaction() as conn:
        await append(conn, 0, escalations("first writer"))
    async with db.transaction() as conn:
        assert pg_driver(conn) is not None
        with pytest.raises(ConcurrencyError):
            await append(conn, 0, escalations("second writer"))
        # Version 1 is taken but version 2 is not: what the append stored of version 2 is taken back.
        with pytest.raises(ConcurrencyError):
            await append(conn, 0, escalations("second writer", "and its next event"))
        count = select(func.count()).select_from(events)
        assert (await conn.execute(count)).scalar_one() == 1
        [next_event] = await append(conn, 1, escalations("after the refusals"))
    rows, boxed = await stored_text(db)
    assert [(r[4], r[8]) for r in rows] == [
        ("1", '{"request_id":"SR-PIN","reason":"first writer"}'),
        ("2", '{"request_id":"SR-PIN","reason":"after the refusals"}'),
    ]
    assert boxed == [(str(rows[0][0]),), (str(next_event.position),)]


async def test_a_lean_write_that_comes_first_in_a_transaction_rolls_back_with_it(db):
    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        async with db.transaction() as conn:
            assert pg_driver(conn) is not None
            # Before any statement through SQLAlchemy: its BEGIN has not been sent yet.
            await write(conn, [(INSERT_PAIR, {"k": 1, "v": "rolled back", "at": None})])
            raise Refused()
    async with db.transaction() as conn:
        await write(conn, [(INSERT_PAIR, [{"k": 2, "v": "committed", "at": None}, {"k": 3, "v": "too", "at": None}])])
    async with db.read() as conn:
        kept = (await conn.execute(select(pairs.c.k, pairs.c.v).order_by(pairs.c.k))).all()
    assert [tuple(r) for r in kept] == [(2, "committed"), (3, "too")]


async def test_a_refused_lean_write_is_sqlalchemys_integrity_error_and_nothing_of_its_transaction_stays(db):
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await write(conn, [(INSERT_PAIR, {"k": 1, "v": "first", "at": None})])
            await write(conn, [(INSERT_PAIR, {"k": 1, "v": "duplicate", "at": None})])
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(pairs))).scalar_one() == 0


async def test_a_lean_look_up_hands_out_the_values_sqlalchemy_hands_out(db):
    at = datetime(2026, 12, 2, 5, 30, tzinfo=UTC)
    async with db.transaction() as conn:
        await write(conn, [(INSERT_PAIR, {"k": 7, "v": "seven", "at": at})])
        statement = Prepared(select(pairs.c.v, pairs.c.at).where(pairs.c.k == 7))
        lean_rows = await query(conn, statement)
        through_sqlalchemy = [tuple(r) for r in await conn.execute(statement.construct)]
    assert lean_rows == through_sqlalchemy == [("seven", at)]
    assert lean_rows[0][1].tzinfo is not None


async def test_update_else_insert_updates_a_row_that_is_there_and_inserts_one_that_is_not(db):
    from sqlalchemy import bindparam, update

    change = Prepared(update(pairs).where(pairs.c.k == bindparam("key")).values(v=bindparam("new_v")))
    async with db.transaction() as conn:
        await update_else_insert(
            conn, change, {"key": 1, "new_v": "inserted"}, INSERT_PAIR, {"k": 1, "v": "new", "at": None}
        )
        await update_else_insert(
            conn, change, {"key": 1, "new_v": "updated"}, INSERT_PAIR, {"k": 1, "v": "x", "at": None}
        )
        await update_else_insert(
            conn, change, {"key": 2, "new_v": "unused"}, INSERT_PAIR, {"k": 2, "v": "two", "at": None}
        )
    async with db.read() as conn:
        kept = (await conn.execute(select(pairs.c.k, pairs.c.v).order_by(pairs.c.k))).all()
    assert [tuple(r) for r in kept] == [(1, "updated"), (2, "two")]


async def test_deadlines_reconciled_on_the_lean_path_are_exactly_the_wanted_ones(db):
    due = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    async with db.transaction() as conn:
        await reconcile_deadlines(conn, "SR-1", {"quote_expiry": due, "reminder": due})
    async with db.transaction() as conn:
        await reconcile_deadlines(conn, "SR-1", {"quote_expiry": due + timedelta(hours=1)})
    async with db.read() as conn:
        found = (
            await conn.execute(select(deadlines.c.kind, deadlines.c.state, deadlines.c.due_at).order_by("kind"))
        ).all()
    assert [tuple(r) for r in found] == [
        ("quote_expiry", "pending", due + timedelta(hours=1)),
        ("reminder", "cancelled", due),
    ]


async def test_a_pooled_connection_the_server_closed_is_replaced_without_failing_the_next_transaction(db):
    async with db.transaction() as conn:
        first_backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        pooled = (await conn.get_raw_connection()).driver_connection  # the asyncpg connection, back to the pool
    # As a server restart does to it: the pooled connection's backend goes, from another session.
    other = await asyncpg.connect(db.url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", first_backend)
    finally:
        await other.close()
    # Until asyncpg has read the server's goodbye on the pooled connection (the event loop runs meanwhile).
    deadline = asyncio.get_running_loop().time() + 10
    while not pooled.is_closed():
        assert asyncio.get_running_loop().time() < deadline, "asyncpg never saw the backend go"
        await asyncio.sleep(0.01)
    async with db.transaction() as conn:  # no pre-ping round trips: a look at the connection on checkout
        backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await write(conn, [(INSERT_PAIR, {"k": 9, "v": "after the restart", "at": None})])
    assert backend != first_backend
    async with db.read() as conn:
        assert (await conn.execute(select(pairs.c.v).where(pairs.c.k == 9))).scalar_one() == "after the restart"
