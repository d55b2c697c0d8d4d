"""intake's read side: a row per request (its current view as JSON plus the columns lists filter on), and the
open-serial reservations that make duplicate detection safe under concurrency. Kept up to date by `project`,
which the unit of work runs after each append (and the rebuild for every stream)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.domain import ServiceRequest
from services.intake.views import to_view
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.eventstore.tables import UtcDateTime
from shared.kernel import Projections, rebuild_read_model

metadata = MetaData()

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


async def project(conn: AsyncConnection, request: ServiceRequest, stored: Sequence[EventEnvelope]) -> None:
    """Upsert the request's row and keep its serial reservation in step with its status: a new open request
    reserves its serial (a second open one for the serial breaks the key: a 409), a closed one frees it."""
    row = {
        "request_id": request.id,
        "status": str(request.status),
        "dealer_id": request.dealer_id,
        "serial": request.product.serial if request.product else "",
        "received_at": request.received_at,
        "version": request.version,
        "view": to_view(request).model_dump_json(),
    }
    if stored[0].sequence == 1:
        # A plain INSERT for a new request: unlike an upsert, SQLAlchemy caches its compiled form.
        await conn.execute(service_requests.insert().values(received_position=stored[0].position, **row))
        if request.is_open and request.product is not None:
            await conn.execute(open_serials.insert().values(serial=request.product.serial, request_id=request.id))
    else:
        await conn.execute(service_requests.update().where(service_requests.c.request_id == request.id).values(**row))
    if not request.is_open and request.product is not None:
        await conn.execute(
            delete(open_serials).where(
                open_serials.c.serial == request.product.serial, open_serials.c.request_id == request.id
            )
        )


PROJECTIONS = Projections()
PROJECTIONS.register(ServiceRequest, project, service_requests, open_serials)


async def open_request_for(conn: AsyncConnection, serial: str) -> str | None:
    return (
        await conn.execute(select(open_serials.c.request_id).where(open_serials.c.serial == serial))
    ).scalar_one_or_none()


async def dealer_of(conn: AsyncConnection, request_id: str | None) -> str | None:
    return (
        await conn.execute(select(service_requests.c.dealer_id).where(service_requests.c.request_id == request_id))
    ).scalar_one_or_none()


async def rebuild(db: Database, store: EventStore) -> int:
    """Replace the read model with one folded afresh from the event store; return the number of requests.

    Used by `python -m services.intake.rebuild` and by the test that proves live == rebuilt."""
    return sum((await rebuild_read_model(db, store, PROJECTIONS)).values())
