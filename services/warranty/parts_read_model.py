"""The parts ledger's read side: the catalogue, stock locations, stock per (location, part), part requests and
part returns, each kept by its aggregate's projector in the transaction that appends the events (and rebuilt by
the same code from the event store). The stock rows are the fold's own numbers, never incremented here: a row
is what the location's stream says, so a rebuild gives the same table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, PrimaryKeyConstraint, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warranty import timeline
from services.warranty.parts_domain import Part, PartRequest
from services.warranty.read_model import metadata
from services.warranty.stock import StockLocation
from shared.clock import rfc3339
from shared.contracts.warranty import PartReturned
from shared.events import EventEnvelope
from shared.eventstore.upsert import upsert

parts = Table(
    "warranty_parts",
    metadata,
    Column("part_number", String(80), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("category", String(80), nullable=False),
    Column("view", Text, nullable=False),
)

stock_locations = Table(
    "warranty_stock_locations",
    metadata,
    Column("location_id", String(80), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("center_id", String(80)),
    # Only a van has a technician, and a technician one van: the key stops a second one registered at once.
    Column("technician_id", String(80), unique=True),
    Column("view", Text, nullable=False),
)
Index("ix_warranty_stock_locations_center", stock_locations.c.center_id)

stock_levels = Table(
    "warranty_stock",
    metadata,
    Column("location_id", String(80), nullable=False),
    Column("part_number", String(80), nullable=False),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    PrimaryKeyConstraint("location_id", "part_number"),
)
Index("ix_warranty_stock_part", stock_levels.c.part_number)

part_requests = Table(
    "warranty_part_requests",
    metadata,
    Column("part_request_id", String(36), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("job_id", String(80), nullable=False),
    Column("dealer_id", String(80)),
    Column("technician_id", String(80)),
    Column("part_number", String(80), nullable=False),
    Column("status", String(20), nullable=False),
    Column("location_id", String(80)),
    Column("view", Text, nullable=False),
)
Index("ix_warranty_part_requests_job", part_requests.c.job_id)
Index("ix_warranty_part_requests_waiting", part_requests.c.part_number, part_requests.c.status)

part_returns = Table(
    "warranty_part_returns",
    metadata,
    Column("return_id", String(36), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("swap_id", String(36), nullable=False, unique=True),
    Column("serial", String(80), nullable=False),
    Column("job_id", String(80), nullable=False),
    Column("dealer_id", String(80)),
    Column("view", Text, nullable=False),
)
Index("ix_warranty_part_returns_job", part_returns.c.job_id)


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


# --- views -------------------------------------------------------------------------------------------------


def part_view(part: Part) -> dict[str, Any]:
    return {
        "part_number": part.part_number,
        "name": part.name,
        "category": part.category,
        "unit_price": str(part.unit_price),
        "currency": part.currency,
        "registered_at": _time(part.last_occurred_at),
        "version": part.version,
    }


def location_view(location: StockLocation) -> dict[str, Any]:
    return {
        "id": location.location_id,
        "kind": location.kind.value if location.kind else None,
        "center_id": location.center_id,
        "technician_id": location.technician_id,
    }


def stock_row_view(row: Any) -> dict[str, Any]:
    return {
        "location_id": row.location_id,
        "part_number": row.part_number,
        "on_hand": row.on_hand,
        "reserved": row.reserved,
        "available": row.on_hand - row.reserved,
    }


def part_request_view(request: PartRequest) -> dict[str, Any]:
    return {
        "id": request.part_request_id,
        "job_id": request.job_id,
        "request_id": request.request_id,
        "serial": request.serial,
        "dealer_id": request.dealer_id,
        "technician_id": request.technician_id,
        "part_number": request.part_number,
        "quantity": request.quantity,
        "status": request.status,
        "location_id": request.location_id,
        "location_kind": request.location_kind.value if request.location_kind else None,
        "to_location_id": request.to_location_id,
        "shipped": request.shipped,
        "received": request.received,
        "requested_by": request.requested_by,
        "requested_at": _time(request.requested_at),
        "version": request.version,
    }


def part_return_view(data: PartReturned, at: datetime) -> dict[str, Any]:
    return {
        "id": data.return_id,
        "swap_id": data.swap_id,
        "job_id": data.job_id,
        "request_id": data.request_id,
        "serial": data.serial,
        "part_number": data.part_number,
        "part_category": data.part_category,
        "old_part_serial": data.old_part_serial,
        "condition": data.condition.value,
        "dealer_id": data.dealer_id,
        "returned_by": data.returned_by,
        "returned_at": _time(at),
    }


# --- projectors ----------------------------------------------------------------------------------------------


async def project_part(conn: AsyncConnection, part: Part, stored: Sequence[EventEnvelope]) -> None:
    row = {
        "part_number": part.part_number,
        "position": stored[0].position,
        "category": part.category,
        "view": json.dumps(part_view(part), ensure_ascii=False),
    }
    await upsert(conn, parts, row, key="part_number", update=["category", "view"])


async def project_location(conn: AsyncConnection, location: StockLocation, stored: Sequence[EventEnvelope]) -> None:
    """The location's row when it is new; the stock row of every part its new events moved, as the fold says."""
    if stored[0].sequence == 1:
        await conn.execute(
            stock_locations.insert().values(
                location_id=location.location_id,
                position=stored[0].position,
                kind=location.kind.value if location.kind else "",
                center_id=location.center_id,
                technician_id=location.technician_id,
                view=json.dumps(location_view(location), ensure_ascii=False),
            )
        )
    moved = {envelope.data_dict().get("part_number") for envelope in stored} - {None}
    rows = []
    for part_number in sorted(moved):
        level = location.level(part_number)
        rows.append(
            {
                "location_id": location.location_id,
                "part_number": part_number,
                "on_hand": level.on_hand,
                "reserved": level.reserved,
            }
        )
    await upsert(conn, stock_levels, rows, key=["location_id", "part_number"], update=["on_hand", "reserved"])


async def project_part_request(conn: AsyncConnection, request: PartRequest, stored: Sequence[EventEnvelope]) -> None:
    row = {
        "part_request_id": request.part_request_id,
        "position": stored[0].position,
        "job_id": request.job_id,
        "dealer_id": request.dealer_id,
        "technician_id": request.technician_id,
        "part_number": request.part_number,
        "status": request.status,
        "location_id": request.location_id,
        "view": json.dumps(part_request_view(request), ensure_ascii=False),
    }
    await upsert(
        conn, part_requests, row, key="part_request_id", update=["technician_id", "status", "location_id", "view"]
    )
    context = timeline.Context(
        serial=request.serial, request_id=request.request_id, job_id=request.job_id, dealer_id=request.dealer_id
    )
    await timeline.add(conn, timeline.own_rows(stored, context))


async def save_part_returns(conn: AsyncConnection, stored: Sequence[EventEnvelope]) -> None:
    """Rows for the part returns among a unit's new events."""
    rows = []
    for envelope in stored:
        if envelope.type == PartReturned.event_type:
            data = PartReturned.model_validate_json(envelope.data)
            rows.append(
                {
                    "return_id": data.return_id,
                    "position": envelope.position,
                    "swap_id": data.swap_id,
                    "serial": data.serial,
                    "job_id": data.job_id,
                    "dealer_id": data.dealer_id,
                    "view": json.dumps(part_return_view(data, envelope.time), ensure_ascii=False),
                }
            )
    if rows:
        await conn.execute(part_returns.insert(), rows)


# --- reads -------------------------------------------------------------------------------------------------


async def location_row(conn: AsyncConnection, location_id: str) -> Any:
    return (await conn.execute(select(stock_locations).where(stock_locations.c.location_id == location_id))).first()


async def van_of(conn: AsyncConnection, technician_id: str | None) -> Any:
    if technician_id is None:
        return None
    return (await conn.execute(select(stock_locations).where(stock_locations.c.technician_id == technician_id))).first()


async def returned_swaps(conn: AsyncConnection, swap_ids: Sequence[str]) -> set[str]:
    if not swap_ids:
        return set()
    rows = await conn.execute(select(part_returns.c.swap_id).where(part_returns.c.swap_id.in_(list(swap_ids))))
    return set(rows.scalars())
