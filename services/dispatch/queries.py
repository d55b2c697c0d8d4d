"""Reads over dispatch's tables: the request projection, auto-assignment candidates, and the API's lists
(keyset pages: a cursor is the sort key of the last item, so concurrent inserts never shift a page)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.assignment import Candidate
from services.dispatch.domain import RequestFacts
from services.dispatch.read_model import (
    dispatch_centers,
    dispatch_jobs,
    dispatch_requests,
    dispatch_technician_skills,
    dispatch_technicians,
)
from shared.contracts.intake import ServiceRequestReceived
from shared.http.pagination import Page


@dataclass(frozen=True)
class KnownRequest:
    facts: RequestFacts
    cancelled: bool


# --- the request projection (written by reactions to intake's events) ------------------------------------


async def remember_request(conn: AsyncConnection, data: ServiceRequestReceived, received_at: datetime) -> None:
    """Keep what a job will need from a received request; the same fact again changes nothing. (One
    partition serves a request's events one at a time, so looking before inserting cannot race.)"""
    known = select(dispatch_requests.c.request_id).where(dispatch_requests.c.request_id == data.request_id)
    if (await conn.execute(known)).first() is not None:
        return
    await conn.execute(
        insert(dispatch_requests).values(
            request_id=data.request_id,
            dealer_id=data.dealer_id,
            region=data.customer.region,
            product_line=data.product.product_line,
            customer_tier=str(data.customer_tier),
            urgent=data.urgent,
            received_at=received_at,
            cancelled=False,
        )
    )


async def known_request(conn: AsyncConnection, request_id: str) -> KnownRequest | None:
    row = (await conn.execute(select(dispatch_requests).where(dispatch_requests.c.request_id == request_id))).first()
    if row is None:
        return None
    facts = RequestFacts(
        request_id=row.request_id,
        dealer_id=row.dealer_id,
        region=row.region,
        product_line=row.product_line,
        received_at=row.received_at,
    )
    return KnownRequest(facts, row.cancelled)


async def mark_request_cancelled(conn: AsyncConnection, request_id: str) -> None:
    await conn.execute(
        update(dispatch_requests).where(dispatch_requests.c.request_id == request_id).values(cancelled=True)
    )


# --- auto-assignment ---------------------------------------------------------------------------------------


async def candidates(conn: AsyncConnection, region: str, product_line: str) -> list[Candidate]:
    """Active technicians of a center in `region` skilled for `product_line`, with their open jobs."""
    t, c, s, j = dispatch_technicians, dispatch_centers, dispatch_technician_skills, dispatch_jobs
    open_jobs = (
        select(func.count())
        .select_from(j)
        .where(j.c.technician_id == t.c.technician_id, j.c.is_load.is_(True))
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(t.c.technician_id, t.c.center_id, c.c.dealer_id, open_jobs.label("open_jobs"))
        .join(c, c.c.center_id == t.c.center_id)
        .join(s, and_(s.c.technician_id == t.c.technician_id, s.c.product_line == product_line))
        .where(c.c.region == region, t.c.active.is_(True))
    )
    return [Candidate(r.technician_id, r.center_id, r.dealer_id, r.open_jobs) for r in rows]


# --- the API's reads -----------------------------------------------------------------------------------------


async def _page(
    conn: AsyncConnection, query: Select, key: ColumnElement, limit: int, after: Any, newest_first: bool = False
) -> Page[dict[str, Any]]:
    """A keyset page on `key` (the views as stored; the routes validate them against their models)."""
    if after is not None:
        query = query.where(key < after if newest_first else key > after)
    query = query.order_by(key.desc() if newest_first else key).limit(limit + 1)
    rows = (await conn.execute(query.add_columns(key.label("sort_key")))).all()
    return Page[dict[str, Any]].of(rows, limit, item=lambda r: json.loads(r.view), key=lambda r: r.sort_key)


async def job_row(conn: AsyncConnection, job_id: str):
    return (
        await conn.execute(
            select(dispatch_jobs.c.view, dispatch_jobs.c.dealer_id, dispatch_jobs.c.technician_id).where(
                dispatch_jobs.c.job_id == job_id
            )
        )
    ).first()


async def jobs_page(
    conn: AsyncConnection,
    *,
    request_id: str | None,
    technician_id: str | None,
    status: str | None,
    dealer_id: str | None,
    limit: int,
    after: int | None,
) -> Page[dict[str, Any]]:
    """Jobs, newest first."""
    j = dispatch_jobs
    query = select(j.c.view)
    for column, value in (
        (j.c.request_id, request_id),
        (j.c.technician_id, technician_id),
        (j.c.status, status),
        (j.c.dealer_id, dealer_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return await _page(conn, query, j.c.created_position, limit, after, newest_first=True)


async def queue_page(
    conn: AsyncConnection, technician_id: str, limit: int, after: str | None, dealer_id: str | None = None
) -> Page[dict[str, Any]]:
    """A technician's open jobs: priority first, then the next due time (of one dealer's requests only, for a
    dealer-scoped reader)."""
    j = dispatch_jobs
    query = select(j.c.view).where(j.c.technician_id == technician_id, j.c.is_load.is_(True))
    if dealer_id is not None:
        query = query.where(j.c.dealer_id == dealer_id)
    return await _page(conn, query, j.c.queue_key, limit, after)


async def center_view(conn: AsyncConnection, center_id: str) -> dict[str, Any] | None:
    view = (
        await conn.execute(select(dispatch_centers.c.view).where(dispatch_centers.c.center_id == center_id))
    ).scalar_one_or_none()
    return json.loads(view) if view else None


async def centers_page(
    conn: AsyncConnection, *, region: str | None, kind: str | None, dealer_id: str | None, limit: int, after: int | None
) -> Page[dict[str, Any]]:
    c = dispatch_centers
    query = select(c.c.view)
    for column, value in ((c.c.region, region), (c.c.kind, kind), (c.c.dealer_id, dealer_id)):
        if value is not None:
            query = query.where(column == value)
    return await _page(conn, query, c.c.position, limit, after)


async def technician_view(conn: AsyncConnection, technician_id: str) -> dict[str, Any] | None:
    view = (
        await conn.execute(
            select(dispatch_technicians.c.view).where(dispatch_technicians.c.technician_id == technician_id)
        )
    ).scalar_one_or_none()
    return json.loads(view) if view else None


async def technician_of_dealer(conn: AsyncConnection, technician_id: str, dealer_id: str) -> bool:
    """Whether the technician works at one of the dealer's centers."""
    t, c = dispatch_technicians, dispatch_centers
    row = (
        await conn.execute(
            select(t.c.technician_id)
            .join(c, c.c.center_id == t.c.center_id)
            .where(t.c.technician_id == technician_id, c.c.dealer_id == dealer_id)
        )
    ).first()
    return row is not None


async def technicians_page(
    conn: AsyncConnection,
    *,
    center_id: str | None,
    skill: str | None,
    active: bool | None,
    limit: int,
    after: int | None,
    dealer_id: str | None = None,
) -> Page[dict[str, Any]]:
    t, s = dispatch_technicians, dispatch_technician_skills
    query = select(t.c.view)
    if dealer_id is not None:
        query = query.where(
            t.c.center_id.in_(select(dispatch_centers.c.center_id).where(dispatch_centers.c.dealer_id == dealer_id))
        )
    if center_id is not None:
        query = query.where(t.c.center_id == center_id)
    if active is not None:
        query = query.where(t.c.active.is_(active))
    if skill is not None:
        query = query.where(t.c.technician_id.in_(select(s.c.technician_id).where(s.c.product_line == skill)))
    return await _page(conn, query, t.c.position, limit, after)
