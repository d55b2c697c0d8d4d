"""complaints' read side: a row per complaint (its view as JSON plus the columns lists filter and sort on),
and what complaints knows of other services' requests and jobs (to link complaints and scope dealers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.complaints.domain import ACTIVE, TOP_LEVEL, Complaint, Status
from services.complaints.views import ComplaintView, to_view
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.eventstore.tables import UtcDateTime
from shared.eventstore.upsert import upsert
from shared.http.pagination import Page
from shared.kernel import Projections, rebuild_read_model
from shared.keyset import keyset_page

metadata = MetaData()

complaints = Table(
    "complaints",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("opened_position", BigInteger, nullable=False, unique=True),
    Column("status", String(24), nullable=False),
    Column("level", Integer, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("category", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("dealer_id", String(80)),
    Column("request_id", String(80)),
    Column("job_id", String(80)),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("next_due", UtcDateTime),
    # Sorts a complaints officer's worklist: active first, highest level first, earliest deadline first.
    Column("worklist_order", String(80), nullable=False, unique=True),
    Column("version", BigInteger, nullable=False),
    Column("view", Text, nullable=False),
)
Index("ix_complaints_status", complaints.c.status, complaints.c.opened_position)
Index("ix_complaints_dealer", complaints.c.dealer_id, complaints.c.opened_position)
Index("ix_complaints_request", complaints.c.request_id)
Index("ix_complaints_job", complaints.c.job_id)

# Learned from intake.events (service_request.received) and dispatch.events (job.created).
known_requests = Table(
    "known_requests",
    metadata,
    Column("request_id", String(80), primary_key=True),
    Column("dealer_id", String(80)),
)
known_jobs = Table(
    "known_jobs",
    metadata,
    Column("job_id", String(80), primary_key=True),
    Column("request_id", String(80), nullable=False),
    Column("dealer_id", String(80)),
)


def worklist_order(complaint: Complaint) -> str:
    """A string whose order is the worklist's: active before done, level 3 before 1, earliest deadline first
    (a complaint whose clock stands still last), then by id."""
    due = complaint.next_due
    due_key = due.strftime("%Y%m%dT%H%M%S%f") if due else "~"
    return f"{0 if complaint.is_active else 1}{TOP_LEVEL - complaint.level}|{due_key}|{complaint.id}"


async def project(conn: AsyncConnection, complaint: Complaint, stored: Sequence[EventEnvelope]) -> None:
    """Upsert the complaint's row (a new one keyed by the position of its first event)."""
    row = {
        "complaint_id": complaint.id,
        "status": str(complaint.status),
        "level": complaint.level,
        "severity": str(complaint.severity),
        "category": str(complaint.category),
        "source": str(complaint.source),
        "dealer_id": complaint.dealer_id,
        "request_id": complaint.request_id,
        "job_id": complaint.job_id,
        "opened_at": complaint.opened_at,
        "next_due": complaint.next_due,
        "worklist_order": worklist_order(complaint),
        "version": complaint.version,
        "view": to_view(complaint).model_dump_json(),
    }
    if stored[0].sequence == 1:
        await upsert(
            conn, complaints, {"opened_position": stored[0].position, **row}, key="complaint_id", update=list(row)
        )
    else:
        await conn.execute(complaints.update().where(complaints.c.complaint_id == complaint.id).values(**row))


PROJECTIONS = Projections()
PROJECTIONS.register(Complaint, project, complaints)


@dataclass(frozen=True)
class ComplaintFilter:
    status: Status | None = None
    active: bool | None = None  # True: open, acknowledged or waiting on the customer
    level: int | None = None
    severity: str | None = None
    category: str | None = None
    source: str | None = None
    dealer_id: str | None = None
    request_id: str | None = None
    job_id: str | None = None
    due_before: datetime | None = None


async def page_of_complaints(
    conn: AsyncConnection, where: ComplaintFilter, *, by_urgency: bool, after: int | str | None, limit: int
) -> Page[ComplaintView]:
    """One page, newest first or in worklist order (keyset on the sort column)."""
    order_column = complaints.c.worklist_order if by_urgency else complaints.c.opened_position
    query = select(complaints.c.view, order_column.label("key"))
    if where.status is not None:
        query = query.where(complaints.c.status == where.status.value)
    if where.active is not None:
        active = complaints.c.status.in_([s.value for s in ACTIVE])
        query = query.where(active if where.active else ~active)
    for column, value in (
        (complaints.c.level, where.level),
        (complaints.c.severity, where.severity),
        (complaints.c.category, where.category),
        (complaints.c.source, where.source),
        (complaints.c.dealer_id, where.dealer_id),
        (complaints.c.request_id, where.request_id),
        (complaints.c.job_id, where.job_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.due_before is not None:
        query = query.where(complaints.c.next_due < where.due_before)
    query = keyset_page(query, order_column, after=after, limit=limit, newest_first=not by_urgency)
    rows = (await conn.execute(query)).all()
    return Page[ComplaintView].of(
        rows, limit, item=lambda r: ComplaintView.model_validate_json(r.view), key=lambda r: r.key
    )


async def visible_view(conn: AsyncConnection, complaint_id: str) -> Row | None:
    return (
        await conn.execute(
            select(complaints.c.view, complaints.c.dealer_id).where(complaints.c.complaint_id == complaint_id)
        )
    ).first()


# --- what complaints knows of other services' requests and jobs -----------------------------------------


async def remember_request(conn: AsyncConnection, request_id: str, dealer_id: str | None) -> None:
    await upsert(conn, known_requests, {"request_id": request_id, "dealer_id": dealer_id})


async def remember_job(conn: AsyncConnection, job_id: str, request_id: str, dealer_id: str | None) -> None:
    await upsert(conn, known_jobs, {"job_id": job_id, "request_id": request_id, "dealer_id": dealer_id})


async def known_request(conn: AsyncConnection, request_id: str) -> Row | None:
    return (await conn.execute(select(known_requests).where(known_requests.c.request_id == request_id))).first()


async def complaints_naming(conn: AsyncConnection, *, request_id: str | None, job_id: str | None) -> list[str]:
    """Ids of the complaints that name the request or the job."""
    found: list[str] = []
    for column, value in ((complaints.c.request_id, request_id), (complaints.c.job_id, job_id)):
        if value is not None:
            found += (await conn.execute(select(complaints.c.complaint_id).where(column == value))).scalars().all()
    return list(dict.fromkeys(found))


async def known_job(conn: AsyncConnection, job_id: str) -> Row | None:
    return (await conn.execute(select(known_jobs).where(known_jobs.c.job_id == job_id))).first()


async def rebuild(db: Database, store: EventStore) -> int:
    """Replace the complaint rows with ones folded afresh from the event store; return how many.

    Used by `python -m services.complaints.rebuild` and by the test that proves live == rebuilt."""
    return sum((await rebuild_read_model(db, store, PROJECTIONS)).values())


__all__ = [
    "ACTIVE",
    "PROJECTIONS",
    "ComplaintFilter",
    "complaints",
    "known_jobs",
    "known_requests",
    "metadata",
    "rebuild",
]
