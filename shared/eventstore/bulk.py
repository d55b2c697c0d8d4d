"""Start many new streams at once: bulk imports of reference data (units sold, service centers, technicians)
append the first events of thousands of aggregates in one transaction. `EventStore.append` costs a savepoint
and two statements per stream; this costs one INSERT for all the events and one for their outbox rows.

Every aggregate must be new (its stream empty): if any stream exists already, the unique (stream id, version)
key refuses the whole batch with ConcurrencyError (nothing of it is appended; the caller's transaction stays
usable).
The rows are those `EventStore.append` writes, so the relay publishes them like any other events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import utcnow
from shared.domain import Aggregate
from shared.events import ActorId, EventEnvelope
from shared.eventstore.store import ConcurrencyError, EventStore, Metadata, _envelope, event_row
from shared.eventstore.tables import events, outbox

BATCH = 1000  # rows per statement, well inside every backend's parameter limits


async def start_streams(
    conn: AsyncConnection,
    store: EventStore,
    aggregates: Sequence[Aggregate],
    metadata: Metadata,
    *,
    actor: ActorId,
) -> list[EventEnvelope]:
    """Append the pending events of new aggregates, in the given order, each caused by `actor` (whoever ran the
    import); return them as stored."""
    recorded_at = utcnow()
    rows: list[dict[str, Any]] = []
    for aggregate in aggregates:
        pending = aggregate.take_pending()
        if aggregate.version != len(pending):
            raise ValueError(f"{aggregate.stream_type} {aggregate.id} is not a new stream")
        rows.extend(
            event_row(aggregate.id, aggregate.stream_type, version, new, metadata, actor, recorded_at)
            for version, new in enumerate(pending, start=1)
        )
    stored: list[Row[Any]] = []
    try:
        # One savepoint for the whole batch: a refused batch leaves the caller's transaction usable.
        async with conn.begin_nested():
            for start in range(0, len(rows), BATCH):
                result = await conn.execute(
                    insert(events).returning(*events.c, sort_by_parameter_order=True), rows[start : start + BATCH]
                )
                batch = result.all()
                await conn.execute(insert(outbox), [{"position": r.position} for r in batch])
                stored.extend(batch)
    except IntegrityError as exc:
        raise ConcurrencyError("a stream of the batch exists already; nothing of the batch was appended") from exc
    return [_envelope(row, store.source) for row in stored]
