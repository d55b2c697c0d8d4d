"""The lean statement path of the hot writes (event append, outbox, read-model rows, deadlines, idempotency
answers): statements compiled once, run on the driver, several in one trip to the SQLite writer's thread.

Through SQLAlchemy, every statement of a command pays a cache-key walk of its construct, an execution context,
a greenlet switch and a trip to aiosqlite's thread (queue, wake-up, loop wake-up): ~10 statements a command, and
on a small VM that was most of a command's CPU (docs/benchmarks.md). Here a `Prepared` statement is compiled by
SQLAlchemy once per dialect (the same SQL text and bind processing SQLAlchemy itself would use, so rows are
stored byte for byte as before), and `run` executes a plain function on the writer's sqlite3 connection, on its
own thread, in one trip: what used to be a trip per statement is now one per step.

The lean path applies on SQLite through `sqlite_driver` inside a transaction (`lean_driver`), and on PostgreSQL
through asyncpg inside a transaction (`pg_driver.py`: the same compiled statements, prepared once per connection
by asyncpg, awaited one by one since there is no thread to batch trips to); elsewhere (a connection outside a
transaction) callers take the SQLAlchemy path with the same statements. Which path is this module's choice, by
the connection: callers (services) never ask the dialect. Driver errors come back as SQLAlchemy's
(`IntegrityError`…), so callers keep one `except`."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from shared.eventstore.pg_driver import PgDriver, pg_driver
from shared.eventstore.sqlite_driver import OneTripConnection

T = TypeVar("T")
Row = Mapping[str, Any]
WriteRows = Row | Sequence[Row]  # a statement's row, or its rows (one executemany)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as the driver takes it: SQL text, then its parameters by position (bind-processed)."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    defaults: Mapping[str, Any]  # literal values the construct carries (`state == 'pending'`)
    # A result column's processing, as SQLAlchemy would apply it to the driver's value (None: none), for the
    # PostgreSQL path, whose driver hands back values SQLAlchemy would still process (UtcDateTime...); None
    # when a column's processing needs what only a SQLAlchemy cursor knows (its type code): SQLAlchemy runs it.
    results: tuple[Callable[[Any], Any] | None, ...] | None = ()

    def parameters(self, row: Row) -> tuple[Any, ...]:
        values = []
        for name, process in zip(self.names, self.processors, strict=True):
            value = row[name] if name in row else self.defaults[name]
            values.append(process(value) if process is not None and value is not None else value)
        return tuple(values)


class Prepared:
    """A SQLAlchemy Core statement (insert, update, delete, select, text) compiled once per dialect. `columns`:
    the keys an INSERT's rows carry (its VALUES clause), as SQLAlchemy would take them from the first row."""

    __slots__ = ("construct", "columns", "_compiled")

    def __init__(self, construct: Executable, *, columns: Sequence[str] | None = None) -> None:
        self.construct = construct
        self.columns = list(columns) if columns is not None else None
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        clause = cast(ClauseElement, self.construct)
        compiled = cast(SQLCompiler, clause.compile(dialect=dialect, column_keys=self.columns))
        names = tuple(compiled.positiontup or ())
        binds = {name: compiled.binds[name] for name in names}
        found = Compiled(
            sql=compiled.string,
            names=names,
            # One processor per position, not per name: a name used twice (`:now, :now`) fills two positions.
            processors=tuple(binds[name].type._cached_bind_processor(dialect) for name in names),
            defaults={name: bind.effective_value for name, bind in binds.items()},
            results=_result_processors(compiled, dialect),
        )
        self._compiled[dialect.name] = found
        return found


def _result_processors(compiled: SQLCompiler, dialect: Dialect) -> tuple[Callable[[Any], Any] | None, ...] | None:
    if dialect.name == "sqlite":
        return ()  # the SQLite path hands out the driver's values, as it always has
    try:
        return tuple(column.type._cached_result_processor(dialect, None) for column in compiled._result_columns)
    except Exception:  # noqa: BLE001  (a type that needs the cursor's type code: PostgreSQL's NUMERIC…)
        return None


class Driver:
    """The writer's sqlite3 connection, on its own thread, for the length of one trip."""

    __slots__ = ("raw", "dialect", "lastrowid", "rowcount")

    def __init__(self, raw: sqlite3.Connection, dialect: Dialect) -> None:
        self.raw, self.dialect = raw, dialect
        self.lastrowid: int | None = None
        self.rowcount = -1

    def execute(self, statement: Prepared, row: Row | None = None) -> list[Any]:
        """One statement; its rows (a SELECT's, or an INSERT's RETURNING)."""
        compiled = statement.compiled(self.dialect)
        cursor = self.raw.execute(compiled.sql, compiled.parameters(row or {}))
        try:
            rows = cursor.fetchall() if cursor.description else []
            self.lastrowid, self.rowcount = cursor.lastrowid, cursor.rowcount
            return rows
        finally:
            cursor.close()

    def executemany(self, statement: Prepared, rows: Iterable[Row]) -> int:
        compiled = statement.compiled(self.dialect)
        cursor = self.raw.executemany(compiled.sql, [compiled.parameters(row) for row in rows])
        try:
            self.rowcount = cursor.rowcount
            return self.rowcount
        finally:
            cursor.close()

    def atomically(self, step: Callable[[Driver], T], name: str = "lean") -> T:
        """`step` in a savepoint: a failing statement undoes the whole step and leaves the transaction usable
        (as SQLAlchemy's `begin_nested` around a step did)."""
        self.raw.execute(f"SAVEPOINT {name}")
        try:
            result = step(self)
        except BaseException:
            self.raw.execute(f"ROLLBACK TO {name}")
            self.raw.execute(f"RELEASE {name}")
            raise
        self.raw.execute(f"RELEASE {name}")
        return result


def lean_driver(conn: AsyncConnection) -> OneTripConnection | None:
    """The writer's aiosqlite connection when the lean path applies to `conn`: SQLite through `sqlite_driver`,
    inside a transaction (outside one, sqlite3 in autocommit mode would commit each statement on its own)."""
    if conn.dialect.name != "sqlite" or not conn.in_transaction():
        return None
    driver = conn.sync_connection.connection.driver_connection if conn.sync_connection else None
    return driver if isinstance(driver, OneTripConnection) else None


async def run(conn: AsyncConnection, driver: OneTripConnection, step: Callable[[Driver], T]) -> T:
    """`step` on the writer's thread in one trip; a driver error is raised as SQLAlchemy's (IntegrityError…)."""
    dialect = conn.dialect

    def on_thread() -> T:
        raw = driver._conn  # aiosqlite's sqlite3 connection, used only on its thread (here)
        try:
            return step(Driver(raw, dialect))
        except sqlite3.Error as exc:
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc

    result: T = await driver._execute(on_thread)
    return result


async def query(conn: AsyncConnection, statement: Prepared, row: Row | None = None) -> list[Any]:
    """A look-up inside a write transaction (a command's check before it decides), or on a read connection (a
    poll): its rows as tuples, on the lean path in one trip, otherwise through SQLAlchemy."""
    driver = lean_driver(conn)
    if driver is None:
        pg = _pg_for(conn, statement, reading=True)
        if pg is not None:
            return await pg.fetch(statement, row)
        return [tuple(r) for r in await conn.execute(statement.construct, dict(row or {}))]
    return await run(conn, driver, lambda db: db.execute(statement, row))


def _pg_for(conn: AsyncConnection, *statements: Prepared, reading: bool = False) -> PgDriver | None:
    """The PostgreSQL path for look-ups `statements`, unless one's results need SQLAlchemy's cursor;
    `reading`: look-ups only, which may also run on a read connection (see `pg_driver`)."""
    pg = pg_driver(conn, reading=reading)
    if pg is None or any(statement.compiled(conn.dialect).results is None for statement in statements):
        return None
    return pg


async def write(conn: AsyncConnection, writes: Sequence[tuple[Prepared, WriteRows]]) -> None:
    """Run `writes` (a statement and its row, or its rows) in order, in the caller's transaction: on the lean
    path in one trip (a list of rows as one executemany), otherwise through SQLAlchemy, statement by statement.
    A failing statement raises; what ran before it is the caller's to roll back, as statement by statement."""
    driver = lean_driver(conn)
    if driver is None:
        pg = pg_driver(conn)
        if pg is not None:
            await write_pg(pg, writes)
            return
        for statement, rows in writes:
            if isinstance(rows, Mapping):
                await conn.execute(statement.construct, dict(rows))
            elif rows:
                await conn.execute(statement.construct, [dict(row) for row in rows])
        return
    await run(conn, driver, lambda db: write_on(db, writes))


async def write_pg(pg: PgDriver, writes: Sequence[tuple[Prepared, WriteRows]]) -> None:
    """`write`'s statements on PostgreSQL's driver (pg_driver.py): prepared once per connection, a list of rows
    as one executemany."""
    for statement, rows in writes:
        if isinstance(rows, Mapping):
            await pg.execute(statement, rows)
        elif rows:
            await pg.executemany(statement, rows)


def write_on(db: Driver, writes: Sequence[tuple[Prepared, WriteRows]]) -> None:
    """`write`'s statements on the writer's thread, within a trip that is already there."""
    for statement, rows in writes:
        if isinstance(rows, Mapping):
            db.execute(statement, rows)
        elif rows:
            db.executemany(statement, rows)


@asynccontextmanager
async def savepoint(conn: AsyncConnection, name: str) -> AsyncIterator[None]:
    """The block in a savepoint of `conn`'s transaction: an error undoes the block's writes only and leaves the
    transaction usable (SQLAlchemy's `begin_nested`, which is what runs off the lean path).

    On the lean path neither end costs a trip of its own: the SAVEPOINT rides with the block's first statement
    and the RELEASE with the next trip after the block, whatever it is (the next block's first statement, the
    COMMIT); only a block that fails after writing pays one trip (ROLLBACK TO, RELEASE). Blocks of the same
    `name` must not be nested in one another; one after the other is what they are for (an event each)."""
    driver = lean_driver(conn)
    if driver is None:
        pg = pg_driver(conn)
        if pg is None:
            async with conn.begin_nested():
                yield
            return
        await pg.execute_sql(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await pg.execute_sql(f"ROLLBACK TO SAVEPOINT {name}")
            await pg.execute_sql(f"RELEASE SAVEPOINT {name}")
            raise
        await pg.execute_sql(f"RELEASE SAVEPOINT {name}")
        return
    begin, end = f"SAVEPOINT {name}", f"RELEASE {name}"
    driver.defer(begin)
    try:
        yield
    except BaseException:
        if not driver.take_back(begin):  # the block wrote something: undo it

            def undo(db: Driver) -> None:
                db.raw.execute(f"ROLLBACK TO {name}")
                db.raw.execute(end)

            await run(conn, driver, undo)
        raise
    if not driver.take_back(begin):
        driver.defer(end)


async def query_many(conn: AsyncConnection, statements: Sequence[tuple[Prepared, Row]]) -> list[list[Any]]:
    """Several look-ups inside a write transaction, each one's rows as tuples: on the lean path in one trip,
    otherwise through SQLAlchemy, one after the other."""
    driver = lean_driver(conn)
    if driver is None:
        pg = _pg_for(conn, *(statement for statement, _ in statements), reading=True)
        if pg is not None:
            return [await pg.fetch(statement, row) for statement, row in statements]
        return [[tuple(r) for r in await conn.execute(s.construct, dict(row))] for s, row in statements]
    return await run(conn, driver, lambda db: [db.execute(statement, row) for statement, row in statements])


async def insert_unless_found(conn: AsyncConnection, lookup: Prepared, key: Row, insert: Prepared, row: Row) -> bool:
    """Insert `row` unless `lookup` finds a row for `key` (on the lean path in one trip); whether it inserted.
    For a row only one writer at a time may insert (a partition's events come one at a time): otherwise the
    table's key refuses the second, as it would statement by statement."""
    driver = lean_driver(conn)
    if driver is None:
        pg = _pg_for(conn, lookup)
        if pg is not None:
            if await pg.fetch(lookup, key):
                return False
            await pg.execute(insert, row)
            return True
        if (await conn.execute(lookup.construct, dict(key))).first() is not None:
            return False
        await conn.execute(insert.construct, dict(row))
        return True

    def step(db: Driver) -> bool:
        if db.execute(lookup, key):
            return False
        db.execute(insert, row)
        return True

    return await run(conn, driver, step)


async def write_later(conn: AsyncConnection, writes: Sequence[tuple[Prepared, Row]]) -> None:
    """`writes` (a statement and its row each) in the caller's transaction, on the lean path not now but at the
    start of the next trip to the writer, whatever it is (a later statement, a savepoint's RELEASE, the
    COMMIT): no trip of their own. Their order with other statements stays as written. For the last writes of a
    step that cannot fail unless the database does (a row whose key nothing else writes): an error is raised by
    the trip that runs them, so the caller must treat any later failure as its own and roll back the whole
    transaction. For consumer reactions: the consumer runs what is left before its transaction ends (a failure
    fails the chunk, retried record by record), so that no failure reaches the group commit's RELEASE, which
    other writers share. Elsewhere (PostgreSQL, outside a transaction) they run now."""
    driver = lean_driver(conn)
    if driver is None:
        await write(conn, writes)
        return
    for statement, row in writes:
        compiled = statement.compiled(conn.dialect)
        driver.defer_statement(compiled.sql, compiled.parameters(row))


async def update_else_insert(conn: AsyncConnection, update: Prepared, changes: Row, insert: Prepared, row: Row) -> None:
    """Run `update` with `changes`; when it changed no row, `insert` `row` (a concurrent writer that inserted
    the same key first makes the INSERT raise IntegrityError, as it would statement by statement). On SQLite's
    lean path in one trip, on PostgreSQL's as two prepared statements, otherwise through SQLAlchemy."""
    driver = lean_driver(conn)
    if driver is not None:

        def step(db: Driver) -> None:
            db.execute(update, changes)
            if db.rowcount == 0:
                db.execute(insert, row)

        await run(conn, driver, step)
        return
    pg = pg_driver(conn)
    if pg is not None:
        if await pg.execute(update, changes) == 0:
            await pg.execute(insert, row)
        return
    if (await conn.execute(update.construct, dict(changes))).rowcount == 0:
        await conn.execute(insert.construct, dict(row))
