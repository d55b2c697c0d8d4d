"""aiosqlite with one trip to its worker thread per statement instead of four.

SQLAlchemy's aiosqlite adapter runs every statement as cursor(), execute(), fetchall() and close(), and aiosqlite
runs each of them as a separate call on the connection's thread; on a small VM each trip (queue, thread wake-up,
loop wake-up) costs tens of microseconds, more than most statements. Here the cursor does all four in one trip,
and the pool's reset-on-return rollback skips its trip when the connection is known to be outside a transaction.
The same sqlite3 calls run on the same thread, in the same order; only the round trips are fewer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite


class OneTripCursor:
    """The part of aiosqlite's Cursor that SQLAlchemy's adapter uses; rows are fetched with the execute."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.lastrowid: int | None = None
        self.rowcount = -1
        self.arraysize = 1
        self._rows: list[Any] = []

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> OneTripCursor:
        raw = self._connection._conn

        def run() -> tuple[Any, list[Any], int | None, int]:
            cursor = raw.cursor()
            try:
                cursor.execute(sql, parameters)
                rows = cursor.fetchall() if cursor.description else []
                return cursor.description, rows, cursor.lastrowid, cursor.rowcount
            finally:
                cursor.close()

        self.description, self._rows, self.lastrowid, self.rowcount = await self._connection._execute(run)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> OneTripCursor:
        raw = self._connection._conn

        def run() -> tuple[int | None, int]:
            cursor = raw.cursor()
            try:
                cursor.executemany(sql, parameters)
                return cursor.lastrowid, cursor.rowcount
            finally:
                cursor.close()

        self.description, self._rows = None, []
        self.lastrowid, self.rowcount = await self._connection._execute(run)
        return self

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection that knows, after every trip, whether SQLite is inside a transaction. Meant for
    SQLAlchemy's aiosqlite adapter (`cursor()` is a plain coroutine here, not aiosqlite's context manager)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._in_transaction = False
        self._deferred: list[str | tuple[str, Sequence[Any]] | Callable[[sqlite3.Connection], None]] = []
        # A deferred savepoint statement failed: the savepoints of this transaction are not what their owners
        # think (a RELEASE that did not happen). Whoever commits the transaction must refuse to (the group commit
        # does). A deferred write's failure is not this: it is raised to the trip's caller, whose transaction or
        # savepoint rolls it back (the consumer retries its chunk record by record).
        self.deferred_failed = False

    def defer(self, sql: str) -> None:
        """Run `sql` (a statement without parameters, such as SAVEPOINT) at the start of the next trip, whatever
        that trip is, instead of in a trip of its own."""
        self._deferred.append(sql)

    def defer_statement(self, sql: str, parameters: Sequence[Any]) -> None:
        """Like `defer`, for a statement with its parameters (in order with the deferred SQL). Whatever trip runs
        it raises its error: for a write that cannot fail unless the database does (lean.write_later)."""
        self._deferred.append((sql, parameters))

    def defer_call(self, step: Callable[[sqlite3.Connection], None]) -> None:
        """Like `defer_statement`, for a step of several statements run on the sqlite3 connection (an append and
        what follows from its positions, `EventStore.append_later`); its error is the trip's, as there."""
        self._deferred.append(step)

    def has_deferred_writes(self) -> bool:
        """Whether a statement deferred with its parameters (or a deferred step) is waiting for the next trip."""
        return any(not isinstance(sql, str) for sql in self._deferred)

    def withdraw_from(self, sql: str) -> bool:
        """Withdraw the last deferred `sql` no trip has run yet and everything deferred after it (what a failed
        step left for the next trip after its own savepoint); False when it ran already."""
        for at in range(len(self._deferred) - 1, -1, -1):
            if self._deferred[at] == sql:
                del self._deferred[at:]
                return True
        return False

    def take_back(self, sql: str) -> bool:
        """Withdraw a deferred `sql` that no trip has run yet; False when it ran already."""
        if sql in self._deferred:
            self._deferred.remove(sql)
            return True
        return False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            try:
                if self._deferred:
                    deferred, self._deferred = self._deferred, []
                    for done, sql in enumerate(deferred):
                        try:
                            if isinstance(sql, str):
                                self._conn.execute(sql)
                            elif isinstance(sql, tuple):
                                self._conn.execute(*sql)
                            else:
                                sql(self._conn)
                        except BaseException:
                            # What did not run stays deferred (a SAVEPOINT its owner may still take back).
                            self._deferred = deferred[done + 1 :] + self._deferred
                            if isinstance(sql, str):
                                self.deferred_failed = True
                            raise
                return fn(*args, **kwargs)
            finally:
                self._in_transaction = _in_transaction(self._connection)

        return await super()._execute(run)  # type: ignore[no-untyped-call]  # aiosqlite has no annotations here

    async def cursor(self) -> OneTripCursor:  # type: ignore[override]  # no trip: the cursor opens in execute()
        return OneTripCursor(self)

    async def rollback(self) -> None:
        self._deferred.clear()  # savepoint statements of the transaction being given up mean nothing after it
        if self._in_transaction:
            await super().rollback()


def _in_transaction(connection: sqlite3.Connection | None) -> bool:
    try:
        return connection is not None and connection.in_transaction
    except sqlite3.ProgrammingError:  # closed
        return False


def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """Like `aiosqlite.connect`; pass as `connect_args={"async_creator_fn": connect}` to SQLAlchemy."""
    connection = OneTripConnection(lambda: sqlite3.connect(database, **kwargs), 64)
    # As SQLAlchemy does for aiosqlite's own connections; before aiosqlite 0.22 the connection is the thread.
    thread: Any = getattr(connection, "_thread", connection)
    thread.daemon = True
    return connection
