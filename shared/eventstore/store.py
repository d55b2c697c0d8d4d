"""The event store: append with optimistic concurrency per stream, read a stream back, and make every
appended event due for publication in the same transaction (transactional outbox)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from opentelemetry import trace
from sqlalchemy import Row, bindparam, delete, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import as_utc, utcnow
from shared.contracts.base import REGISTRY, EventData, Registry
from shared.domain import PendingEvent
from shared.events import ActorId, EventEnvelope
from shared.eventstore import lean, pg_driver
from shared.eventstore.sqlite_driver import OneTripConnection
from shared.eventstore.tables import events, outbox
from shared.observability.tracing import current_traceparent, recording, span


class ConcurrencyError(Exception):
    """Another writer appended to the stream first."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    data: EventData
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Metadata:
    """Where a batch of new events comes from: the command (or event) that caused it."""

    correlation_id: str
    causation_id: str
    traceparent: str | None = None


# (source, stream type) → the namespace its stream ids carry ("product:" for warranty's units): events of such
# streams are published with the business id as their subject (and Kafka key), as before namespacing.
_SUBJECT_NAMESPACES: dict[tuple[str, str], str] = {}


def publish_business_ids(source: str, stream_type: str, namespace: str) -> None:
    """Declare that `source`'s streams of `stream_type` are named `<namespace>:<business id>`, and that their
    events' subject is the business id alone (what consumers and partners have always keyed on)."""
    _SUBJECT_NAMESPACES[(source, stream_type)] = f"{namespace}:"


def subject_of(source: str, stream_type: str, stream_id: str) -> str:
    """The subject (and Kafka key) of an event of `source`'s stream: its id, without a declared namespace."""
    namespace = _SUBJECT_NAMESPACES.get((source, stream_type)) if _SUBJECT_NAMESPACES else None
    return stream_id.removeprefix(namespace) if namespace else stream_id


def _envelope(row: Row[Any], source: str) -> EventEnvelope:
    # By key through the row's mapping: a third of the cost of attribute access, which the relay pays per event.
    return _envelope_of(row._mapping, source)


def _envelope_of(m: Mapping[Any, Any], source: str) -> EventEnvelope:
    namespace = _SUBJECT_NAMESPACES.get((source, m["stream_type"])) if _SUBJECT_NAMESPACES else None
    return EventEnvelope(
        id=m["event_id"],
        source=source,
        type=m["type"],
        subject=m["stream_id"].removeprefix(namespace) if namespace else m["stream_id"],
        time=m["occurred_at"],
        dataschema=f"{m['type']}/{m['schema_version']}",
        sequence=m["version"],
        recordedat=m["recorded_at"],
        correlationid=m["correlation_id"],
        causationid=m["causation_id"],
        data=m["data"],
        topic=m["topic"],
        traceparent=m["traceparent"],
        position=m["position"],
        actor=m["actor"],
    )


_EVENT_COLUMNS = [c.key for c in events.c if c.key != "position"]
# The lean path's statements (see lean.py): the INSERT SQLAlchemy ran, compiled once; the position is the rowid.
_INSERT_EVENT = lean.Prepared(insert(events), columns=_EVENT_COLUMNS)
_INSERT_OUTBOX = lean.Prepared(insert(outbox), columns=["position"])


def new_event_id() -> str:
    """A random (version 4) UUID's text, as `str(uuid.uuid4())` makes it from the same 16 bytes of `os.urandom`,
    in a third of the time (no `UUID` object, its int round trip and checks, between the bytes and the text)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# An actor's text by actor: a service's own actor (every reaction's) and a token's user append again and again,
# and the text escapes its parts character by character. Bounded: emptied when it grows past `_ACTOR_TEXTS_MAX`.
_ACTOR_TEXTS: dict[ActorId, str] = {}
_ACTOR_TEXTS_MAX = 4096


def actor_text(actor: ActorId) -> str:
    """`str(actor)`, remembered."""
    text = _ACTOR_TEXTS.get(actor)
    if text is None:
        if len(_ACTOR_TEXTS) >= _ACTOR_TEXTS_MAX:
            _ACTOR_TEXTS.clear()
        text = _ACTOR_TEXTS[actor] = str(actor)
    return text


def event_row(
    stream_id: str,
    stream_type: str,
    version: int,
    new: NewEvent | PendingEvent,
    metadata: Metadata,
    actor: ActorId,
    recorded_at: datetime,
) -> dict[str, Any]:
    """The stored row of one new event: what the bulk import (and `EventStore.append` off the lean path) writes."""
    return {
        "event_id": new_event_id(),
        "stream_id": stream_id,
        "stream_type": stream_type,
        "version": version,
        "type": new.data.event_type,
        "schema_version": new.data.version,
        "topic": new.data.topic,
        "data": new.data.model_dump_json(),
        "occurred_at": new.occurred_at,
        "recorded_at": recorded_at,
        "correlation_id": metadata.correlation_id,
        "causation_id": metadata.causation_id,
        "traceparent": metadata.traceparent,
        "actor": actor_text(actor),
    }


class _StreamMoved(Exception):
    """The append was refused by the (stream id, version) key: another writer was first."""


# The lean INSERT's parameters in the order of its VALUES clause, as SQLAlchemy compiled it from the columns:
# `_lean_statements` checks the compiled statement against it once per dialect.
_EVENT_PARAMETERS = (
    "event_id",
    "stream_id",
    "stream_type",
    "version",
    "type",
    "schema_version",
    "topic",
    "data",
    "occurred_at",
    "recorded_at",
    "correlation_id",
    "causation_id",
    "traceparent",
    "actor",
)
if pg_driver.APPEND_COLUMNS != _EVENT_PARAMETERS:  # the PostgreSQL append takes the same rows
    raise RuntimeError(f"the events table no longer binds as the lean append assumes: {pg_driver.APPEND_COLUMNS}")
_DELETE_EVENT = lean.Prepared(delete(events).where(events.c.position == bindparam("position")))
_DELETE_OUTBOX = lean.Prepared(delete(outbox).where(outbox.c.position == bindparam("position")))


@dataclass(frozen=True, slots=True)
class _LeanStatements:
    """The append's statements on the driver, with the bind processing of its two time columns (the only ones
    that have any): what `lean.Compiled.parameters` would do for each row, without its look-ups per column."""

    insert_event: str
    insert_outbox: str
    delete_event: str
    delete_outbox: str
    occurred_at: Callable[[datetime], Any]
    recorded_at: Callable[[datetime], Any]


_LEAN_STATEMENTS: dict[str, _LeanStatements] = {}


def _lean_statements(dialect: Dialect) -> _LeanStatements:
    found = _LEAN_STATEMENTS.get(dialect.name)
    if found is not None:
        return found
    event, box, gone, unboxed = (
        s.compiled(dialect) for s in (_INSERT_EVENT, _INSERT_OUTBOX, _DELETE_EVENT, _DELETE_OUTBOX)
    )
    processed = {name for name, process in zip(event.names, event.processors, strict=True) if process is not None}
    occurred, recorded = (event.processors[event.names.index(name)] for name in ("occurred_at", "recorded_at"))
    if (
        event.names != _EVENT_PARAMETERS
        or processed != {"occurred_at", "recorded_at"}
        or occurred is None
        or recorded is None
        or box.names != ("position",)
        or gone.names != ("position",)
        or unboxed.names != ("position",)
        or any(box.processors + gone.processors + unboxed.processors)
    ):
        raise RuntimeError(f"the events table no longer binds as the lean append assumes: {event.names}")
    found = _LEAN_STATEMENTS[dialect.name] = _LeanStatements(
        event.sql, box.sql, gone.sql, unboxed.sql, occurred, recorded
    )
    return found


def _insert_events(
    raw: sqlite3.Connection, statements: _LeanStatements, parameters: list[tuple[Any, ...]]
) -> list[int]:
    """The events, then their outbox rows; their positions. Without a savepoint (its SAVEPOINT and RELEASE doubled
    SQLite's time for a two-event append): a refused statement writes nothing (SQLite undoes that statement alone),
    and what was written before it is deleted again by position before the error is raised, so that nothing of a
    failed append stays in the caller's transaction, as when a savepoint was rolled back (SQLite then hands out
    the same positions)."""
    positions: list[int] = []
    boxed = 0
    try:
        for row in parameters:
            position = raw.execute(statements.insert_event, row).lastrowid
            assert position is not None
            positions.append(position)
        for position in positions:
            raw.execute(statements.insert_outbox, (position,))
            boxed += 1
    except BaseException:
        for position in positions[:boxed]:
            raw.execute(statements.delete_outbox, (position,))
        for position in positions:
            raw.execute(statements.delete_event, (position,))
        raise
    return positions


def _append_lean(
    parameters: list[tuple[Any, ...]],
    envelope: Callable[[tuple[Any, ...], int], EventEnvelope],
    statements: _LeanStatements,
    then: Callable[[lean.Driver, list[EventEnvelope]], None] | None,
    db: lean.Driver,
) -> list[EventEnvelope]:
    """On the writer's thread, in one trip: the events, then their outbox rows (`_insert_events`), then `then`;
    what was stored."""
    try:
        positions = _insert_events(db.raw, statements, parameters)
    except sqlite3.IntegrityError as exc:
        raise _StreamMoved() from exc
    stored = [envelope(row, position) for row, position in zip(parameters, positions, strict=True)]
    if then is not None:
        then(db, stored)
    return stored


def _append_later(
    parameters: list[tuple[Any, ...]],
    statements: _LeanStatements,
    then: Callable[[sqlite3.Connection, list[int]], None] | None,
    raw: sqlite3.Connection,
) -> None:
    """`EventStore.append_later`'s step, on the writer's thread in the trip that runs it: the events and their
    outbox rows, then `then` with their positions. A refused row is the trip's sqlite3.IntegrityError (never a
    ConcurrencyError: the trip may be another event's, which must not take it for its own lost race)."""
    positions = _insert_events(raw, statements, parameters)
    if then is not None:
        then(raw, positions)


def _rows(
    statements: _LeanStatements,
    stream_id: str,
    stream_type: str,
    expected_version: int,
    new_events: Sequence[NewEvent | PendingEvent],
    metadata: Metadata,
    actor: ActorId,
    recorded_at: datetime,
) -> list[tuple[Any, ...]]:
    """The new events' rows as the driver binds them (the same values, times bound as the INSERT binds them)."""
    recorded = statements.recorded_at(recorded_at)
    occurred = statements.occurred_at
    correlation_id, causation_id, traceparent = metadata.correlation_id, metadata.causation_id, metadata.traceparent
    actor_id = actor_text(actor)
    parameters = []
    last_time, last_bound = None, None  # a reaction's events share their time: bound once
    for version, new in enumerate(new_events, start=expected_version + 1):
        data = new.data
        if new.occurred_at is not last_time:
            last_time = new.occurred_at
            last_bound = occurred(last_time)
        parameters.append(
            (
                new_event_id(),
                stream_id,
                stream_type,
                version,
                data.event_type,
                data.version,
                data.topic,
                data.model_dump_json(),
                last_bound,
                recorded,
                correlation_id,
                causation_id,
                traceparent,
                actor_id,
            )
        )
    return parameters


class EventStore:
    def __init__(self, source: str, registry: Registry = REGISTRY) -> None:
        self.source = source
        self.registry = registry

    async def load(
        self, conn: AsyncConnection, stream_id: str, stream_type: str | None = None
    ) -> list[tuple[EventData, datetime]]:
        """The stream's events as (data, occurred_at), oldest first; empty when the stream does not exist.
        With `stream_type`, only events appended by that aggregate type: never fold another type's events."""
        history, _ = await self.load_with_actors(conn, stream_id, stream_type)
        return history

    async def load_with_actors(
        self, conn: AsyncConnection, stream_id: str, stream_type: str | None = None
    ) -> tuple[list[tuple[EventData, datetime]], list[str]]:
        """`load`, and who caused each of those events (their `actor`s, in the same order)."""
        query = (
            select(events.c.type, events.c.schema_version, events.c.data, events.c.occurred_at, events.c.actor)
            .where(events.c.stream_id == stream_id)
            .order_by(events.c.version)
        )
        if stream_type is not None:
            query = query.where(events.c.stream_type == stream_type)
        rows = await conn.execute(query)
        history, actors = [], []
        for row in rows:
            model = self.registry.get(row.type, row.schema_version)
            if model is None:
                raise LookupError(f"no contract for stored event {row.type}/{row.schema_version}")
            history.append((model.model_validate_json(row.data), row.occurred_at))
            actors.append(row.actor)
        return history, actors

    def _appending(self, stream_id: str, events: int) -> AbstractContextManager[object]:
        """The append's span. Nothing in the append reads the trace context (the events carry
        `metadata.traceparent`): without a tracer provider the span would record nothing, so it is not started."""
        if not recording():
            return nullcontext()
        return span(self.source, "eventstore.append", attributes={"stream_id": stream_id, "events": events})

    async def append(
        self,
        conn: AsyncConnection,
        *,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        new_events: Sequence[NewEvent | PendingEvent],
        metadata: Metadata,
        actor: ActorId,
        then: Callable[[lean.Driver, list[EventEnvelope]], None] | None = None,
    ) -> list[EventEnvelope]:
        """Append after `expected_version`; raise ConcurrencyError when the stream moved on meanwhile. Every
        event records `actor`, who caused it (there is no default: the kernel's unit of work says who).

        `then`, on the lean path only (`lean.lean_driver(conn)`): a step run in the same trip to the writer once
        the events are stored, given what was stored (the unit of work's deadlines and read-model rows); its
        errors are its own, not a ConcurrencyError."""
        if not new_events:
            return []
        recorded_at = utcnow()
        with self._appending(stream_id, len(new_events)):
            driver = lean.lean_driver(conn)
            pg = pg_driver.pg_driver(conn) if driver is None else None
            if driver is not None or pg is not None:
                # The rows as the driver binds them, and the envelopes built from them once their positions are
                # known: no row dict in between.
                statements = _lean_statements(conn.dialect)
                parameters = _rows(
                    statements, stream_id, stream_type, expected_version, new_events, metadata, actor, recorded_at
                )
                correlation_id, causation_id, traceparent = (
                    metadata.correlation_id,
                    metadata.causation_id,
                    metadata.traceparent,
                )
                actor_id = actor_text(actor)
                subject = subject_of(self.source, stream_type, stream_id)
                times = [as_utc(new.occurred_at) for new in new_events]  # as a stored row reads back
                first = expected_version + 1

                def envelope(row: tuple[Any, ...], position: int) -> EventEnvelope:
                    return EventEnvelope(
                        id=row[0],
                        source=self.source,
                        type=row[4],
                        subject=subject,
                        time=times[row[3] - first],
                        dataschema=f"{row[4]}/{row[5]}",
                        sequence=row[3],
                        recordedat=recorded_at,
                        correlationid=correlation_id,
                        causationid=causation_id,
                        data=row[7],
                        topic=row[6],
                        traceparent=traceparent,
                        position=position,
                        actor=actor_id,
                    )

                if pg is not None:  # PostgreSQL: events and outbox rows in one statement (pg_driver.py)
                    if then is not None:
                        raise ValueError("`then` runs on SQLite's lean path only")
                    try:
                        positions = await pg_driver.append_events(pg, parameters)
                    except pg_driver.StreamMoved as exc:
                        raise ConcurrencyError(
                            f"stream {stream_id} is no longer at version {expected_version}"
                        ) from exc
                    return [envelope(row, position) for row, position in zip(parameters, positions, strict=True)]
                assert driver is not None
                step = partial(_append_lean, parameters, envelope, statements, then)
                try:
                    return await lean.run(conn, driver, step)
                except _StreamMoved as exc:
                    raise ConcurrencyError(f"stream {stream_id} is no longer at version {expected_version}") from exc
            if then is not None:
                raise ValueError("`then` runs on the lean path only (lean.lean_driver(conn) is None here)")
            rows = [
                event_row(stream_id, stream_type, version, new, metadata, actor, recorded_at)
                for version, new in enumerate(new_events, start=expected_version + 1)
            ]
            try:
                # A savepoint keeps the caller's transaction usable when the append loses the race.
                async with conn.begin_nested():
                    result = await conn.execute(insert(events).returning(*events.c), rows)
                    stored = sorted(result.all(), key=lambda r: r.version)
                    await conn.execute(insert(outbox), [{"position": r.position} for r in stored])
            except IntegrityError as exc:
                raise ConcurrencyError(f"stream {stream_id} is no longer at version {expected_version}") from exc
        return [_envelope(row, self.source) for row in stored]

    def append_later(
        self,
        driver: OneTripConnection,
        dialect: Dialect,
        *,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        new_events: Sequence[NewEvent | PendingEvent],
        metadata: Metadata,
        actor: ActorId,
        then: Callable[[sqlite3.Connection, list[int]], None] | None = None,
    ) -> None:
        """`append` on SQLite's lean path (`driver`: `lean.lean_driver(conn)` of the caller's transaction), not
        now but at the start of the next trip to the writer, whatever it is (`lean.write_later`'s rules): the
        same rows, then `then` on the writer's thread with their positions (for the rows that need them).

        Only for an append nothing can refuse unless the database fails (a stream that the caller knows no other
        writer can take meanwhile, such as a new stream in a consumer chunk, whose writer is the chunk's): a lost
        race would surface as the trip's IntegrityError, not as a ConcurrencyError, and the caller must then roll
        back its whole transaction (the consumer fails the chunk and retries it record by record). It must be the
        caller's last act in a savepoint that a failure may undo (as `lean.write_later`)."""
        if not new_events:
            return
        with self._appending(stream_id, len(new_events)):  # the rows made, not the trip that stores them
            statements = _lean_statements(dialect)
            parameters = _rows(
                statements, stream_id, stream_type, expected_version, new_events, metadata, actor, utcnow()
            )
            driver.defer_call(partial(_append_later, parameters, statements, then))

    async def read_all(
        self, conn: AsyncConnection, *, after_position: int = 0, limit: int = 1000
    ) -> list[EventEnvelope]:
        """Every stream in global order (for rebuilding read models)."""
        rows = await conn.execute(
            select(events).where(events.c.position > after_position).order_by(events.c.position).limit(limit)
        )
        return [_envelope(row, self.source) for row in rows]


@dataclass
class StoredStream:
    """One stream as stored: its type, where it began in the global order, and its events in order."""

    stream_id: str
    stream_type: str
    first_position: int
    envelopes: list[EventEnvelope]
    history: list[tuple[EventData, datetime]]


async def stored_streams(
    store: EventStore, conn: AsyncConnection, *, stream_types: set[str] | None = None, page: int = 2000
) -> dict[str, StoredStream]:
    """Every stream (of `stream_types`, or all), in the order the streams began, decoded: what a rebuild of a
    read model folds afresh."""
    streams: dict[str, StoredStream] = {}
    after = 0
    while True:
        query = select(events).where(events.c.position > after).order_by(events.c.position).limit(page)
        rows = (await conn.execute(query)).all()
        if not rows:
            return streams
        after = rows[-1].position
        for row in rows:
            if stream_types is not None and row.stream_type not in stream_types:
                continue
            envelope = _envelope(row, store.source)
            model = store.registry.get(envelope.type, envelope.schema_version)
            if model is None:
                raise LookupError(f"no contract for stored event {envelope.dataschema}")
            stream = streams.get(row.stream_id)
            if stream is None:
                stream = streams[row.stream_id] = StoredStream(row.stream_id, row.stream_type, row.position, [], [])
            stream.envelopes.append(envelope)
            stream.history.append((model.model_validate_json(envelope.data), envelope.time))


def new_metadata(correlation_id: str | None = None, traceparent: str | None = None) -> Metadata:
    """Metadata for a command coming from outside: it starts its own chain."""
    command_id = correlation_id or str(uuid.uuid4())
    return Metadata(correlation_id=command_id, causation_id=command_id, traceparent=traceparent)


def caused_by(cause: EventEnvelope) -> Metadata:
    """Metadata for events recorded in reaction to `cause`: same correlation, caused by it, and in the trace
    of the consumer span that handles it (or the cause's own trace context when tracing is off)."""
    # Without a valid current span (tracing off: the consumer starts none) the current traceparent is the
    # cause's own, and the propagators need not be asked.
    traceparent = (
        current_traceparent(cause.traceparent)
        if trace.get_current_span().get_span_context().is_valid
        else cause.traceparent
    )
    return Metadata(correlation_id=cause.correlationid, causation_id=cause.id, traceparent=traceparent)
