"""One timeline per unit, across dealers, built from the events of every service: intake's requests,
dispatch's jobs and visits, warranty's own sale, swaps (old and new part serials), repairs, claims and returns.

A row per event, in business time. Dispatch's events name only the request, so their rows carry the request id
and find their unit through the request intake announced; the two topics may arrive in either order and the
history is the same. Each row keeps the dealer it belongs to, so a dealer sees only its own part of a unit's
life."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String, Table, Text, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warranty.read_model import known_requests, metadata
from shared.clock import as_utc, rfc3339
from shared.events import EventEnvelope, IncomingEvent
from shared.eventstore.tables import Position, UtcDateTime
from shared.eventstore.upsert import upsert

timeline = Table(
    "warranty_timeline",
    metadata,
    Column("seq", Position, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("serial", String(80)),
    Column("request_id", String(80)),
    Column("job_id", String(80)),
    Column("dealer_id", String(80)),
    Column("time", UtcDateTime, nullable=False),
    Column("type", String(80), nullable=False),
    Column("source", String(40), nullable=False),
    Column("detail", Text, nullable=False),
    Column("actor", Text, nullable=False),  # who caused the event (its `ce_actor`)
)
Index("ix_warranty_timeline_serial", timeline.c.serial, timeline.c.time)
Index("ix_warranty_timeline_request", timeline.c.request_id)

# The customer's name and phone stay with intake: a unit's history is about the unit.
PRIVATE_FIELDS = frozenset({"customer"})
NOT_ON_TIMELINE = frozenset({"warranty_policy.set"})


@dataclass(frozen=True)
class Context:
    """What an event of ours belongs to when its data does not say (a claim decision names no serial)."""

    serial: str | None = None
    request_id: str | None = None
    job_id: str | None = None
    dealer_id: str | None = None


def _row(envelope: EventEnvelope, data: dict[str, Any], context: Context) -> dict[str, Any]:
    return {
        "event_id": envelope.id,
        "serial": data.get("serial") or context.serial,
        "request_id": data.get("request_id") or context.request_id,
        "job_id": data.get("job_id") or context.job_id,
        "dealer_id": data["dealer_id"] if "dealer_id" in data else context.dealer_id,
        "time": envelope.time,
        "type": envelope.type,
        "source": envelope.source,
        "detail": json.dumps({k: v for k, v in data.items() if k not in PRIVATE_FIELDS}, ensure_ascii=False),
        "actor": envelope.actor,
    }


def own_rows(stored: Sequence[EventEnvelope], context: Context) -> list[dict[str, Any]]:
    return [_row(e, e.data_dict(), context) for e in stored if e.type not in NOT_ON_TIMELINE]


def incoming_row(event: IncomingEvent, *, serial: str | None = None, dealer_id: str | None = None) -> dict[str, Any]:
    data = event.data.model_dump(mode="json")
    if "product" in data:  # service_request.received: the unit is what this timeline is keyed by
        data["serial"] = data["product"]["serial"]
    return _row(event.envelope, data, Context(serial=serial, dealer_id=dealer_id))


async def add(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Entries not there yet (keyed by event id: an entry added twice is one)."""
    await upsert(conn, timeline, rows, key="event_id")


def entry_view(row: Any) -> dict[str, Any]:
    return {
        "time": rfc3339(row.time),
        "type": row.type,
        "source": row.source,
        "request_id": row.request_id,
        "job_id": row.job_id,
        "dealer_id": row.dealer_id,
        "detail": json.loads(row.detail),
        "actor": row.actor,
    }


async def history(
    conn: AsyncConnection, serial: str, *, dealer_scope: str | None, after: tuple[datetime, int] | None, limit: int
) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
    """The unit's entries, oldest first, after the cursor; and the cursor of the next page (None at the end)."""
    requests_of_unit = select(known_requests.c.request_id).where(known_requests.c.serial == serial)
    query = select(timeline).where(or_(timeline.c.serial == serial, timeline.c.request_id.in_(requests_of_unit)))
    if dealer_scope is not None:
        query = query.where(timeline.c.dealer_id == dealer_scope)
    if after is not None:
        time, seq = as_utc(after[0]), after[1]
        query = query.where(or_(timeline.c.time > time, and_(timeline.c.time == time, timeline.c.seq > seq)))
    rows = (await conn.execute(query.order_by(timeline.c.time, timeline.c.seq).limit(limit + 1))).all()
    page = rows[:limit]
    cursor = (rfc3339(page[-1].time), page[-1].seq) if len(rows) > limit else None
    return [entry_view(r) for r in page], cursor
