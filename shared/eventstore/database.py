"""One service's database: engines, SQLite tuning, transactions and a wake-up for the outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState

from shared.eventstore import sqlite_driver
from shared.eventstore.group_commit import GroupCommit

_BUSY_TIMEOUT_SECONDS = 30

# The unit of work of the running task, joined by every transaction() of its database (see unit_of_work()).
# A task started inside inherits the variable but not the transaction: the task is part of the key.
_ambient: ContextVar[tuple[Database, AsyncConnection, object] | None] = ContextVar("ambient_transaction", default=None)


class Database:
    """Writes run in `transaction()`; reads in `read()`.

    On SQLite the write transactions of this process that queue together are grouped into one database
    transaction, each in a savepoint, each answered after the group's durable COMMIT (`group_commit.py`;
    `group_commit_limit=1` turns it off).

    On SQLite every write transaction starts with BEGIN IMMEDIATE: writers queue for the single write lock
    (busy_timeout) instead of failing when a read snapshot turns stale, and a command's read-check-append runs
    against the latest state. Reads use a second engine with ordinary deferred transactions, so they never
    wait for writers (WAL). Within one process, `transaction()` also queues writers on an asyncio lock before
    BEGIN IMMEDIATE: SQLite's busy handler polls with sleeps of up to 100 ms, which under concurrent requests
    made waits of seconds; other processes still meet the busy timeout.

    On PostgreSQL (asyncpg), `read()` runs each statement on its own (autocommit, no BEGIN/ROLLBACK): it is
    for reads only; what it wrote would not be rolled back."""

    def __init__(
        self, url: str, *, sqlite_synchronous: str = "FULL", group_commit_limit: int = 64, echo: bool = False
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.committed = asyncio.Event()
        self._writer_loop: asyncio.AbstractEventLoop | None = None
        self._writer_lock = asyncio.Lock()
        self.group_commit: GroupCommit | None = None  # SQLite: see group_commit.py; PostgreSQL commits per call
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = self._sqlite_engine(immediate=True, synchronous=sqlite_synchronous, echo=echo)
            self.read_engine = self._sqlite_engine(immediate=False, synchronous=sqlite_synchronous, echo=echo)
            if group_commit_limit > 1:
                self.group_commit = GroupCommit(
                    self.engine, limit=group_commit_limit, timeout=_BUSY_TIMEOUT_SECONDS, on_commit=self.committed.set
                )
        else:
            # asyncpg notices a connection the server closed (a restart, a terminated backend) on its own: a look
            # at it on checkout replaces SQLAlchemy's pre-ping, which costs three round trips (BEGIN, a query,
            # ROLLBACK) before every transaction. Other drivers keep the pre-ping.
            asyncpg = self.url.get_driver_name() == "asyncpg"
            self.engine = create_async_engine(
                self.url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=not asyncpg
            )
            if asyncpg:
                event.listen(self.engine.sync_engine, "checkout", _closed_by_the_server)
                event.listen(self.engine.sync_engine.pool, "reset", _discard_what_the_adapter_missed)
            # Reads (polls, look-ups, GETs) on the same pool, each statement on its own: under READ COMMITTED a
            # transaction gives a read no snapshot its statements share, and cost a BEGIN and a ROLLBACK round
            # trip around every read (a poll that found nothing was three trips, now one). The isolation level
            # is the adapter's setting, put back when the connection returns to the pool, so `transaction()`
            # on the same connection afterwards is a transaction again (test_database_pool.py).
            self.read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT") if asyncpg else self.engine

    def _sqlite_engine(self, *, immediate: bool, synchronous: str, echo: bool) -> AsyncEngine:
        engine = create_async_engine(
            self.url, echo=echo, connect_args={"timeout": 30, "async_creator_fn": sqlite_driver.connect}
        )

        @event.listens_for(engine.sync_engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_SECONDS * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "begin")
        def on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

        return engine

    async def create_all(self, metadata: MetaData) -> None:
        """Create missing tables (development and tests; production runs migrations)."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Replicas starting together would race on CREATE TABLE; one at a time, in a transaction.
                await conn.execute(text("SELECT pg_advisory_xact_lock(7320516)"))
            await conn.run_sync(metadata.create_all)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; committed when the block ends without an exception.

        Inside `unit_of_work()` of the same database (same task), it is that unit of work's transaction: what
        the block writes commits or rolls back with everything else the unit of work does."""
        ambient = _ambient.get()
        if ambient is not None and ambient[0] is self and ambient[2] is asyncio.current_task():
            yield ambient[1]
            return
        if self.group_commit is not None:
            async with self.group_commit.transaction() as conn:
                yield conn
            return
        async with self._writer():
            async with self.engine.begin() as conn:
                yield conn
        self.committed.set()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction that every `transaction()` opened inside it (in this task) joins: an HTTP
        command's effects, its Idempotency-Key answer, and whatever fails after the append are committed or
        rolled back together (a 500 leaves no write behind)."""
        async with self.transaction() as conn:
            token = _ambient.set((self, conn, asyncio.current_task()))
            try:
                yield conn
            finally:
                _ambient.reset(token)

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        """On SQLite, one write transaction of this process at a time (FIFO). Waiting longer than the busy
        timeout fails, as BEGIN IMMEDIATE would (a transaction opened inside another one waits for itself)."""
        if not self.is_sqlite:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._writer_loop is not loop:  # a lock serves one event loop
            self._writer_loop, self._writer_lock = loop, asyncio.Lock()
        lock = self._writer_lock
        try:
            async with asyncio.timeout(_BUSY_TIMEOUT_SECONDS):
                await lock.acquire()
        except TimeoutError:
            raise TimeoutError(
                f"no write transaction of {self.url.database} ended within "
                f"{_BUSY_TIMEOUT_SECONDS} s (nested transaction()?)"
            ) from None
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.read_engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine.pool is not self.engine.pool:
            await self.read_engine.dispose()


def _closed_by_the_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """On checkout of a pooled asyncpg connection: one the server closed is replaced, and the pool's other
    connections of before with it (as a failed pre-ping does), instead of failing the request that gets it."""
    driver = getattr(dbapi_connection, "_connection", None)  # SQLAlchemy's adapter holds the asyncpg connection
    if driver is not None and driver.is_closed():
        raise InvalidatePoolError("the server closed this connection")


class ConnectionLeftInDoubt(Exception):
    """A pooled connection came back with a transaction SQLAlchemy's adapter did not see begin."""


def _discard_what_the_adapter_missed(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    """On return to the pool of an asyncpg connection: one whose transaction state SQLAlchemy's adapter does not
    know is discarded, not handed on. A task cancelled while its BEGIN was being answered leaves the adapter
    with a transaction object it never marked started (and asyncpg with a top transaction it never cleared),
    and perhaps the server with a transaction open. The pool's own reset rolls back only what the adapter saw
    begin; a ROLLBACK sent here would close the server's transaction but not asyncpg's, whose next "BEGIN" is
    then a SAVEPOINT inside nothing (every transaction on it fails) or, if the ROLLBACK came too early, inside
    the orphan (a command's "commit" a RELEASE that is rolled back later: an answered 201 lost). Raising makes
    the pool log it and invalidate this one connection. Costs nothing when the connection is idle."""
    driver = getattr(dbapi_connection, "_connection", None)
    if not state.asyncio_safe or driver is None or driver.is_closed():
        return
    if getattr(dbapi_connection, "_started", False):
        return  # the adapter's own transaction: the pool's reset rolls it back
    if (
        driver.is_in_transaction()
        or getattr(dbapi_connection, "_transaction", None) is not None
        or getattr(driver, "_top_xact", None) is not None
    ):
        raise ConnectionLeftInDoubt("a pooled connection came back with a transaction its adapter did not begin")
