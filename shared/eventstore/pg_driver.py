"""The lean statement path on PostgreSQL: the hot writes on the asyncpg connection SQLAlchemy holds, in its
transaction, as prepared statements.

Through SQLAlchemy every statement of a command pays its construct's cache-key walk, an execution context, a
greenlet switch and result wrapping: on this box that was most of a command's CPU on PostgreSQL, as on SQLite
(docs/benchmarks.md). Here a `lean.Prepared` statement is compiled by SQLAlchemy once for the asyncpg dialect
(the same SQL text, casts and bind processing SQLAlchemy would use) and run by asyncpg itself, which prepares
it once per connection and keeps it (its statement cache, by SQL text): no re-compilation per request, on
either side.

The event append has a statement of its own (`append_events`): the events and their outbox rows in one
statement, one round trip, whatever the number of events; a lost race is a short answer, not an error that
would abort the transaction (see there).

Used only from `lean.py` and the event store: services keep calling `lean.query`/`lean.write`, which choose
the path by the connection. Errors come back as SQLAlchemy's (`IntegrityError`…), as on the SQLAlchemy path.
This reaches into SQLAlchemy's asyncpg adapter for one thing, whether its transaction has started
(`_started`/`_start_transaction`: the adapter begins lazily, at its first statement); pyproject pins the
SQLAlchemy range it was written against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.tables import events

if TYPE_CHECKING:
    from shared.eventstore.lean import Prepared

Row = Mapping[str, Any]


class PgDriver:
    """The asyncpg connection under a SQLAlchemy connection that is inside a transaction, for one step."""

    __slots__ = ("adapter", "raw", "dialect")

    def __init__(self, adapter: Any, dialect: Any) -> None:
        self.adapter = adapter  # SQLAlchemy's AsyncAdapt_asyncpg_connection
        self.raw = adapter._connection  # the asyncpg connection (the fairy's `driver_connection`)
        self.dialect = dialect

    async def _begun(self) -> None:
        # SQLAlchemy's adapter sends BEGIN with its first statement; a step that comes first sends it here, or
        # its statements would run outside the transaction (each committed on its own).
        if not self.adapter._started:
            await self.adapter._start_transaction()

    async def fetch(self, statement: Prepared, row: Row | None = None) -> list[tuple[Any, ...]]:
        """A statement's rows, as tuples of the values SQLAlchemy would hand out (its result processing)."""
        compiled = statement.compiled(self.dialect)
        await self._begun()
        parameters = compiled.parameters(row or {})
        try:
            records = await self.raw.fetch(compiled.sql, *parameters)
        except Exception as exc:
            self._raise(exc, compiled.sql, parameters)
        results = compiled.results  # None: `lean` takes SQLAlchemy's path for such a statement, not this one
        if results is None or not any(results):
            return [tuple(record) for record in records]
        return [
            tuple(v if p is None or v is None else p(v) for v, p in zip(record, results, strict=True))
            for record in records
        ]

    async def execute(self, statement: Prepared, row: Row | None = None) -> int:
        """One statement; the rows it changed (UPDATE/DELETE/INSERT)."""
        compiled = statement.compiled(self.dialect)
        await self._begun()
        parameters = compiled.parameters(row or {})
        try:
            status: str = await self.raw.execute(compiled.sql, *parameters)
        except Exception as exc:
            self._raise(exc, compiled.sql, parameters)
        return _rowcount(status)

    async def executemany(self, statement: Prepared, rows: Iterable[Row]) -> None:
        """One statement for each row (asyncpg sends them in one pipeline)."""
        compiled = statement.compiled(self.dialect)
        await self._begun()
        parameters = [compiled.parameters(row) for row in rows]
        if not parameters:
            return
        try:
            await self.raw.executemany(compiled.sql, parameters)
        except Exception as exc:
            self._raise(exc, compiled.sql, parameters)

    async def execute_sql(self, sql: str, *parameters: Any) -> Any:
        """A statement of this module's own (the append, a savepoint); its rows when it returns any."""
        await self._begun()
        try:
            if parameters:
                return await self.raw.fetch(sql, *parameters)
            return await self.raw.execute(sql)
        except Exception as exc:
            self._raise(exc, sql, parameters)

    def _raise(self, exc: Exception, sql: str, parameters: Any) -> NoReturn:
        """`exc` as SQLAlchemy raises it: asyncpg's error translated by the adapter (as a statement through
        SQLAlchemy would be), then wrapped as `sqlalchemy.exc.IntegrityError` and the like."""
        try:
            self.adapter._handle_exception(exc)
        except Exception as translated:
            if isinstance(translated, self.adapter.dbapi.Error):
                raise DBAPIError.instance(sql, parameters, translated, self.adapter.dbapi.Error) from exc
            raise
        raise exc  # not reached: _handle_exception always raises


def pg_driver(conn: AsyncConnection, *, reading: bool = False) -> PgDriver | None:
    """The asyncpg connection of `conn` when the lean path applies: PostgreSQL through asyncpg, inside a
    transaction (outside one, each statement would commit on its own), or, for a look-up (`reading`), on a
    read connection (`Database.read()`: autocommit, where each statement running on its own is the point)."""
    dialect = conn.dialect
    if dialect.name != "postgresql" or dialect.driver != "asyncpg":
        return None
    sync = conn.sync_connection
    if sync is None:
        return None
    adapter = sync.connection.dbapi_connection
    if adapter is None or not hasattr(adapter, "_start_transaction"):
        return None
    if adapter.autocommit:
        # A read connection: SQLAlchemy may say "in a transaction" after its first statement there, but each
        # statement commits on its own, so it serves look-ups only, never writes.
        return PgDriver(adapter, dialect) if reading else None
    if not conn.in_transaction():
        return None
    return PgDriver(adapter, dialect)


def _rowcount(status: str) -> int:
    """The row count of a command tag (`UPDATE 3`, `INSERT 0 1`, `DELETE 0`); -1 for tags without one."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else -1


# --- the event append --------------------------------------------------------------------------------------

# The events' columns, in the order of the rows `append_events` takes (`store._EVENT_PARAMETERS`: the order of
# the INSERT SQLAlchemy compiles, which the store checks).
APPEND_COLUMNS = tuple(c.key for c in events.c if c.key != "position")
# What differs between the events of one append, with the array type each column is sent as; the rest (stream,
# time of recording, metadata, actor) is one value for the whole append.
_PER_EVENT = (
    ("event_id", "VARCHAR[]"),
    ("version", "INTEGER[]"),
    ("type", "VARCHAR[]"),
    ("schema_version", "INTEGER[]"),
    ("topic", "VARCHAR[]"),
    ("data", "TEXT[]"),
    ("occurred_at", "TIMESTAMP WITH TIME ZONE[]"),
)
_PER_APPEND = (
    ("stream_id", "VARCHAR"),
    ("stream_type", "VARCHAR"),
    ("recorded_at", "TIMESTAMP WITH TIME ZONE"),
    ("correlation_id", "VARCHAR"),
    ("causation_id", "VARCHAR"),
    ("traceparent", "VARCHAR"),
    ("actor", "TEXT"),
)
_EVENT_INDEXES = tuple(APPEND_COLUMNS.index(name) for name, _ in _PER_EVENT)
_APPEND_INDEXES = tuple(APPEND_COLUMNS.index(name) for name, _ in _PER_APPEND)


def _append_sql() -> str:
    """The events (one array per varying column, unnested in order, so positions follow versions) and an outbox
    row for each, in one statement. `ON CONFLICT (stream_id, version) DO NOTHING`: an event whose version another
    writer stored first is not inserted and not returned (waiting for that writer's transaction, as the unique
    key itself would), instead of an error that aborts the caller's transaction; the caller compares counts."""
    values = {name: f"e.{name}" for name, _ in _PER_EVENT}
    for number, (name, type_) in enumerate(_PER_APPEND, start=len(_PER_EVENT) + 1):
        values[name] = f"${number}::{type_}"
    arrays = ", ".join(f"${n}::{type_}" for n, (_, type_) in enumerate(_PER_EVENT, start=1))
    names = ", ".join(name for name, _ in _PER_EVENT)
    return (
        f"WITH appended AS (INSERT INTO events ({', '.join(APPEND_COLUMNS)}) "
        f"SELECT {', '.join(values[name] for name in APPEND_COLUMNS)} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS e({names}, n) ORDER BY e.n "
        "ON CONFLICT (stream_id, version) DO NOTHING RETURNING position, version), "
        "boxed AS (INSERT INTO outbox (position) SELECT position FROM appended) "
        "SELECT position, version FROM appended ORDER BY version"
    )


APPEND_SQL = _append_sql()
# An append that lost its race at a later event takes back what it stored of the earlier ones.
_TAKE_BACK_SQL = (
    "WITH unboxed AS (DELETE FROM outbox WHERE position = ANY($1::BIGINT[])) "
    "DELETE FROM events WHERE position = ANY($1::BIGINT[])"
)


class StreamMoved(Exception):
    """Another writer stored a version this append wanted; nothing of the append is left."""


async def append_events(db: PgDriver, parameters: Sequence[tuple[Any, ...]]) -> list[int]:
    """Store the events (rows of `store._EVENT_PARAMETERS`, bind-processed) and their outbox rows in the
    caller's transaction, in one round trip; their positions, in the order of `parameters`. Raises StreamMoved
    (with nothing stored) when another writer has a version of these."""
    first = parameters[0]
    arguments: list[Any] = [[row[index] for row in parameters] for index in _EVENT_INDEXES]
    arguments += [first[index] for index in _APPEND_INDEXES]
    stored = await db.execute_sql(APPEND_SQL, *arguments)
    if len(stored) != len(parameters):
        if stored:
            await db.execute_sql(_TAKE_BACK_SQL, [position for position, _ in stored])
        raise StreamMoved()
    return [position for position, _ in stored]
