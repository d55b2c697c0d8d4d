"""The event store: append with optimistic concurrency per stream, read a stream back, and make every
appended event due for publication in the same transaction (transactional outbox)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import as_utc, utcnow
from shared.contracts.base import REGISTRY, EventData, Registry
from shared.domain import PendingEvent
from shared.events import ActorId, EventEnvelope
from shared.eventstore import lean
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


def event_row(
    stream_id: str,
    stream_type: str,
    version: int,
    new: NewEvent | PendingEvent,
    metadata: Metadata,
    actor: ActorId,
    recorded_at: datetime,
) -> dict[str, Any]:
    """The stored row of one new event: what `EventStore.append` and the bulk import both write."""
    return {
        "event_id": str(uuid.uuid4()),
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
        "actor": str(actor),
    }


class _StreamMoved(Exception):
    """The append's savepoint was refused by the (stream id, version) key: another writer was first."""


def _append_then(
    rows: list[dict[str, Any]],
    source: str,
    then: Callable[[lean.Driver, list[EventEnvelope]], None] | None,
    db: lean.Driver,
) -> list[EventEnvelope]:
    try:
        # A savepoint keeps the caller's transaction usable when the append loses the race.
        positions = db.atomically(partial(_append_on_driver, rows), "append")
    except sqlite3.IntegrityError as exc:
        raise _StreamMoved() from exc
    for row, position in zip(rows, positions, strict=True):
        row["position"] = position
        row["occurred_at"] = as_utc(row["occurred_at"])  # as a stored row reads back
    stored = [_envelope_of(row, source) for row in rows]
    if then is not None:
        then(db, stored)
    return stored


def _append_on_driver(rows: list[dict[str, Any]], db: lean.Driver) -> list[int]:
    """On the writer's thread, in one trip: the events, then their outbox rows; their positions, in order."""
    positions = []
    for row in rows:
        db.execute(_INSERT_EVENT, row)
        assert db.lastrowid is not None
        positions.append(db.lastrowid)
    db.executemany(_INSERT_OUTBOX, [{"position": p} for p in positions])
    return positions


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

    async def append(
        self,
        conn: AsyncConnection,
        *,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        new_events: Sequence[NewEvent],
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
        rows = [
            event_row(stream_id, stream_type, expected_version + offset, new, metadata, actor, recorded_at)
            for offset, new in enumerate(new_events, start=1)
        ]
        # Nothing in the append reads the trace context (the events carry `metadata.traceparent`): without a
        # tracer provider the span would record nothing, so it is not even started.
        appending = (
            span(self.source, "eventstore.append", attributes={"stream_id": stream_id, "events": len(rows)})
            if recording()
            else nullcontext()
        )
        with appending:
            driver = lean.lean_driver(conn)
            if driver is not None:
                try:
                    return await lean.run(conn, driver, partial(_append_then, rows, self.source, then))
                except _StreamMoved as exc:
                    raise ConcurrencyError(f"stream {stream_id} is no longer at version {expected_version}") from exc
            if then is not None:
                raise ValueError("`then` runs on the lean path only (lean.lean_driver(conn) is None here)")
            try:
                # A savepoint keeps the caller's transaction usable when the append loses the race.
                async with conn.begin_nested():
                    result = await conn.execute(insert(events).returning(*events.c), rows)
                    stored = sorted(result.all(), key=lambda r: r.version)
                    await conn.execute(insert(outbox), [{"position": r.position} for r in stored])
            except IntegrityError as exc:
                raise ConcurrencyError(f"stream {stream_id} is no longer at version {expected_version}") from exc
        return [_envelope(row, self.source) for row in stored]

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
    return Metadata(
        correlation_id=cause.correlationid, causation_id=cause.id, traceparent=current_traceparent(cause.traceparent)
    )
