"""intake's read side: a row per request (its current view as JSON plus the columns lists filter on), and the
open-serial reservations that make duplicate detection safe under concurrency. Kept up to date by `project`,
which the unit of work runs after each append (and the rebuild for every stream)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.domain import ServiceRequest
from services.intake.quotes import CataloguePrice
from services.intake.views import to_view
from shared.contracts.intake import ServiceRequestQuoteExpiryWithdrawn
from shared.contracts.warranty import PartRegistered
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.lean import Prepared, query, write
from shared.eventstore.store import EventStore
from shared.eventstore.tables import UtcDateTime
from shared.kernel import Projections, rebuild_read_model

metadata = MetaData()
REOPENS = ServiceRequestQuoteExpiryWithdrawn.event_type  # the one event that makes a closed request open again

service_requests = Table(
    "service_requests",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("received_position", BigInteger, nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("dealer_id", String(80)),
    Column("serial", String(80), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("view", Text, nullable=False),
)
Index("ix_service_requests_status", service_requests.c.status, service_requests.c.received_position)
Index("ix_service_requests_dealer", service_requests.c.dealer_id, service_requests.c.received_position)
Index("ix_service_requests_serial", service_requests.c.serial)

# A serial has at most one open request: the primary key enforces it even for concurrent creates.
open_serials = Table(
    "open_serials",
    metadata,
    Column("serial", String(80), primary_key=True),
    Column("request_id", String(36), nullable=False),
)

# intake's copy of warranty's parts catalogue, to price quotes from: one row per part number, the last
# registration (by the event's time, then its sequence in the part's stream) wins. Fed by the reaction to
# `part.registered`, not by intake's own events: the read-model rebuild leaves it alone (replaying
# warranty.events rebuilds it). Prices are decimal strings: exact on SQLite and PostgreSQL alike.
part_prices = Table(
    "part_prices",
    metadata,
    Column("part_number", String(80), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("category", String(80), nullable=False),
    Column("unit_price", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("registered_sequence", BigInteger, nullable=False),
)


_ROW_COLUMNS = ["request_id", "status", "dealer_id", "serial", "received_at", "version", "view"]
# The projector's statements, compiled once and run in one trip on the writer (shared/eventstore/lean.py).
_INSERT_REQUEST = Prepared(service_requests.insert(), columns=[*_ROW_COLUMNS, "received_position"])
_UPDATE_REQUEST = Prepared(
    service_requests.update()
    .where(service_requests.c.request_id == bindparam("current_id"))
    .values({name: bindparam(f"new_{name}") for name in _ROW_COLUMNS if name != "request_id"})
)
_RESERVE_SERIAL = Prepared(open_serials.insert(), columns=["serial", "request_id"])
_FREE_SERIAL = Prepared(
    delete(open_serials).where(
        open_serials.c.serial == bindparam("serial"), open_serials.c.request_id == bindparam("request_id")
    )
)


def request_writes(request: ServiceRequest, stored: Sequence[EventEnvelope]) -> list[tuple[Prepared, dict[str, Any]]]:
    """The request's row and its serial reservation in step with its status: a new open request reserves its
    serial (a second open one for the serial breaks the key: a 409), a closed one frees it. Pure: the unit of
    work runs these in the append's trip to the writer (`Projections.register(..., writes=)`)."""
    serial = request.product.serial if request.product else ""
    row = {
        "request_id": request.id,
        "status": str(request.status),
        "dealer_id": request.dealer_id,
        "serial": serial,
        "received_at": request.received_at,
        "version": request.version,
        "view": to_view(request).model_dump_json(),
    }
    writes: list[tuple[Prepared, dict[str, Any]]] = []
    if stored[0].sequence == 1:
        writes.append((_INSERT_REQUEST, {**row, "received_position": stored[0].position}))
        if request.is_open and request.product is not None:
            writes.append((_RESERVE_SERIAL, {"serial": serial, "request_id": request.id}))
    else:
        changes = {f"new_{name}": value for name, value in row.items() if name != "request_id"}
        writes.append((_UPDATE_REQUEST, {**changes, "current_id": request.id}))
        if request.is_open and request.product is not None and any(e.type == REOPENS for e in stored):
            # A late acceptance withdrew the quote's expiry: the request takes its serial back (a new request
            # that took it meanwhile breaks the key: a 409, nothing written).
            writes.append((_RESERVE_SERIAL, {"serial": serial, "request_id": request.id}))
    if not request.is_open and request.product is not None:
        writes.append((_FREE_SERIAL, {"serial": serial, "request_id": request.id}))
    return writes


async def project(conn: AsyncConnection, request: ServiceRequest, stored: Sequence[EventEnvelope]) -> None:
    """Upsert the request's row and keep its serial reservation in step (`request_writes`)."""
    await write(conn, request_writes(request, stored))


PROJECTIONS = Projections()
PROJECTIONS.register(ServiceRequest, project, service_requests, open_serials, writes=request_writes)


async def note_part_price(conn: AsyncConnection, part: PartRegistered, at: datetime, sequence: int) -> bool:
    """Keep the catalogue's price of a part; an older (or the same) registration changes nothing. One
    partition serves a part's events one at a time, so looking before writing cannot race."""
    known = (
        await conn.execute(
            select(part_prices.c.registered_at, part_prices.c.registered_sequence).where(
                part_prices.c.part_number == part.part_number
            )
        )
    ).first()
    row = {
        "name": part.name,
        "category": part.category,
        "unit_price": str(part.unit_price),
        "currency": part.currency,
        "registered_at": at,
        "registered_sequence": sequence,
    }
    if known is None:
        await conn.execute(part_prices.insert().values(part_number=part.part_number, **row))
        return True
    if (at, sequence) <= (known.registered_at, known.registered_sequence):
        return False
    await conn.execute(part_prices.update().where(part_prices.c.part_number == part.part_number).values(**row))
    return True


async def catalogue_prices(conn: AsyncConnection, part_numbers: Iterable[str]) -> dict[str, CataloguePrice]:
    wanted = sorted(set(part_numbers))
    if not wanted:
        return {}
    rows = await conn.execute(select(part_prices).where(part_prices.c.part_number.in_(wanted)))
    return {r.part_number: CataloguePrice(r.part_number, r.name, Decimal(r.unit_price), r.currency) for r in rows}


_OPEN_REQUEST_FOR = Prepared(select(open_serials.c.request_id).where(open_serials.c.serial == bindparam("serial")))


async def open_request_for(conn: AsyncConnection, serial: str) -> str | None:
    """The open request that holds `serial`, if any (every create asks: on the lean path, lean.py)."""
    rows = await query(conn, _OPEN_REQUEST_FOR, {"serial": serial})
    return str(rows[0][0]) if rows else None


async def serial_of(conn: AsyncConnection, request_id: str) -> str | None:
    return (
        await conn.execute(select(service_requests.c.serial).where(service_requests.c.request_id == request_id))
    ).scalar_one_or_none()


async def dealer_of(conn: AsyncConnection, request_id: str | None) -> str | None:
    return (
        await conn.execute(select(service_requests.c.dealer_id).where(service_requests.c.request_id == request_id))
    ).scalar_one_or_none()


async def rebuild(db: Database, store: EventStore) -> int:
    """Replace the read model with one folded afresh from the event store; return the number of requests.

    Used by `python -m services.intake.rebuild` and by the test that proves live == rebuilt."""
    return sum((await rebuild_read_model(db, store, PROJECTIONS)).values())
