"""intake's read side: a row per request (its current view as JSON plus the columns lists filter on), and the
open-serial reservations that make duplicate detection safe under concurrency."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.domain import ServiceRequest
from shared.clock import rfc3339
from shared.eventstore.store import stored_streams
from shared.eventstore.tables import UtcDateTime, metadata

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


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


def to_view(request: ServiceRequest) -> dict[str, Any]:
    """The request as the API shows it (design.md, GET /v1/service-requests/{id})."""
    coverage = request.coverage
    return {
        "id": request.id,
        "status": str(request.status),
        "dealer_id": request.dealer_id,
        "channel": str(request.channel),
        "customer": request.customer.model_dump(mode="json") if request.customer else None,
        "product": request.product.model_dump(mode="json") if request.product else None,
        "purchase_date": request.purchase_date.isoformat() if request.purchase_date else None,
        "symptom": request.symptom,
        "customer_tier": str(request.customer_tier),
        "urgent": request.urgent,
        "received_at": _time(request.received_at),
        "mode": str(request.mode) if request.mode else None,
        "priority": str(request.priority) if request.priority else None,
        "coverage": None
        if coverage is None
        else {
            "covered": coverage.covered,
            "expires_on": coverage.expires_on.isoformat() if coverage.expires_on else None,
            "reason": coverage.reason,
        },
        "job_id": request.job_id,
        "version": request.version,
        "history": [{"type": t, "time": _time(at)} for t, at in request.history],
    }


async def save_view(conn: AsyncConnection, request: ServiceRequest, received_position: int | None,
                    is_sqlite: bool) -> None:
    """Upsert the request's row and keep its serial reservation in step with its status."""
    row = {
        "request_id": request.id,
        "status": str(request.status),
        "dealer_id": request.dealer_id,
        "serial": request.product.serial if request.product else "",
        "received_at": request.received_at,
        "version": request.version,
        "view": json.dumps(to_view(request), ensure_ascii=False),
    }
    if received_position is not None:
        # A plain INSERT for a new request: unlike an upsert, SQLAlchemy caches its compiled form.
        await conn.execute(service_requests.insert().values(received_position=received_position, **row))
    else:
        await conn.execute(
            service_requests.update().where(service_requests.c.request_id == request.id).values(**row)
        )
    if not request.is_open and request.product is not None:
        await conn.execute(
            delete(open_serials).where(open_serials.c.serial == request.product.serial,
                                       open_serials.c.request_id == request.id)
        )


async def open_request_for(conn: AsyncConnection, serial: str) -> str | None:
    return (
        await conn.execute(select(open_serials.c.request_id).where(open_serials.c.serial == serial))
    ).scalar_one_or_none()


async def reserve_serial(conn: AsyncConnection, serial: str, request_id: str) -> None:
    await conn.execute(open_serials.insert().values(serial=serial, request_id=request_id))


async def rebuild(db, store) -> int:
    """Replace the read model with one folded afresh from the event store; return the number of requests.

    Used by `python -m services.intake.rebuild` and by the test that proves live == rebuilt."""
    async with db.read() as conn:
        streams = await stored_streams(store, conn, stream_types={ServiceRequest.stream_type})
    async with db.transaction() as conn:
        await conn.execute(delete(service_requests))
        await conn.execute(delete(open_serials))
        for request_id, stream in streams.items():
            request = ServiceRequest.rehydrate(request_id, stream.history)
            await save_view(conn, request, stream.first_position, db.is_sqlite)
            if request.is_open and request.product is not None:
                await reserve_serial(conn, request.product.serial, request_id)
    return len(streams)
