"""Reads over dispatch's tables: the request projection, auto-assignment candidates, and the API's lists
(keyset pages: a cursor is the sort key of the last item, so concurrent inserts never shift a page)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.assignment import Candidate
from services.dispatch.chunk_reads import ChunkReads, KnownRequest, Later, Pair, keep_reads, kept_reads
from services.dispatch.domain import RequestFacts, job_id_for
from services.dispatch.read_model import (
    LaterWrite,
    dispatch_centers,
    dispatch_jobs,
    dispatch_requests,
    dispatch_technician_load,
    dispatch_technician_skills,
    dispatch_technicians,
)
from shared.clock import as_utc
from shared.contracts.intake import ServiceRequestReceived
from shared.events import IncomingEvent
from shared.eventstore import lean
from shared.http.pagination import Page
from shared.keyset import keyset_page
from shared.messaging.consumer import current_chunk

# The reactions' statements, compiled once (shared/eventstore/lean.py): on SQLite they run on the writer's
# connection, several in one trip; elsewhere through SQLAlchemy, the same constructs.
_REQUEST_COLUMNS = [c.key for c in dispatch_requests.c]
_FIND_REQUEST = lean.Prepared(
    select(*dispatch_requests.c).where(dispatch_requests.c.request_id == bindparam("request_id"))
)
_REQUEST_IS_KNOWN = lean.Prepared(
    select(dispatch_requests.c.request_id).where(dispatch_requests.c.request_id == bindparam("request_id"))
)
_INSERT_REQUEST = lean.Prepared(insert(dispatch_requests), columns=_REQUEST_COLUMNS)
_CANCEL_REQUEST = lean.Prepared(
    update(dispatch_requests).where(dispatch_requests.c.request_id == bindparam("the_request_id")),
    columns=["cancelled"],
)
_LATER_REQUEST = LaterWrite(_INSERT_REQUEST, _REQUEST_COLUMNS)
# A request's job is found by its id, which derives from the request's (`job_id_for`): the primary key's search.
_JOB_OF_REQUEST = lean.Prepared(select(dispatch_jobs.c.job_id).where(dispatch_jobs.c.job_id == bindparam("job_id")))


def _candidates_of_request() -> lean.Prepared:
    """Active technicians of a center in the request's region skilled for its product line, with their open
    jobs: each found by a key or an index (the centers of a region, their technicians, one skill row each, one
    load row each), so its cost follows the candidates, never the number of jobs."""
    r, t, c, s, load = (
        dispatch_requests,
        dispatch_technicians,
        dispatch_centers,
        dispatch_technician_skills,
        dispatch_technician_load,
    )
    return lean.Prepared(
        select(t.c.technician_id, t.c.center_id, c.c.dealer_id, func.coalesce(load.c.open_jobs, 0))
        .select_from(r)
        .join(c, c.c.region == r.c.region)
        .join(t, t.c.center_id == c.c.center_id)
        .join(s, and_(s.c.technician_id == t.c.technician_id, s.c.product_line == r.c.product_line))
        .outerjoin(load, load.c.technician_id == t.c.technician_id)
        .where(r.c.request_id == bindparam("request_id"), t.c.active.is_(True))
    )


_CANDIDATES_OF_REQUEST = _candidates_of_request()


def _candidates_of_pair() -> lean.Prepared:
    """The candidates of every request of a region and product line (the chunk's reads): the same rows as
    `_CANDIDATES_OF_REQUEST` for each of those requests, found the same way from the region's centers."""
    t, c, s, load = dispatch_technicians, dispatch_centers, dispatch_technician_skills, dispatch_technician_load
    return lean.Prepared(
        select(t.c.technician_id, t.c.center_id, c.c.dealer_id, func.coalesce(load.c.open_jobs, 0))
        .select_from(c)
        .join(t, t.c.center_id == c.c.center_id)
        .join(s, and_(s.c.technician_id == t.c.technician_id, s.c.product_line == bindparam("product_line")))
        .outerjoin(load, load.c.technician_id == t.c.technician_id)
        .where(c.c.region == bindparam("region"), t.c.active.is_(True))
    )


_CANDIDATES_OF_PAIR = _candidates_of_pair()

# A chunk's requests are looked up by IN lists of these sizes (padded with a repeated id), so that a handful of
# statements is compiled once each, whatever the chunks' sizes.
_IN_SIZES = (1, 4, 16, 64, 256)


@lru_cache(maxsize=len(_IN_SIZES))
def _requests_in(size: int) -> lean.Prepared:
    ids: list[Any] = [bindparam(f"r{i}") for i in range(size)]
    return lean.Prepared(select(*dispatch_requests.c).where(dispatch_requests.c.request_id.in_(ids)))


@lru_cache(maxsize=len(_IN_SIZES))
def _jobs_in(size: int) -> lean.Prepared:
    ids: list[Any] = [bindparam(f"r{i}") for i in range(size)]
    return lean.Prepared(select(dispatch_jobs.c.job_id).where(dispatch_jobs.c.job_id.in_(ids)))


def _in_lists(ids: list[str]) -> list[dict[str, str]]:
    """`ids` as the parameters of IN lists of `_IN_SIZES` (the last one padded)."""
    lists = []
    for start in range(0, len(ids), _IN_SIZES[-1]):
        part = ids[start : start + _IN_SIZES[-1]]
        size = next(size for size in _IN_SIZES if size >= len(part))
        part += part[-1:] * (size - len(part))
        lists.append({f"r{i}": request_id for i, request_id in enumerate(part)})
    return lists


# --- the request projection (written by reactions to intake's events) ------------------------------------


async def remember_request(conn: AsyncConnection, data: ServiceRequestReceived, received_at: datetime) -> None:
    """Keep what a job will need from a received request; the same fact again changes nothing. (One
    partition serves a request's events one at a time, so looking before inserting cannot race.) In a
    consumer chunk, what the chunk read says whether the row exists: no look-up of its own."""
    reads = await chunk_reads(conn)
    if reads is not None and data.request_id in reads.requests:
        if reads.requests[data.request_id] is not None:
            return  # the same fact again
        # The chunk's reads say the row is not there: nothing else can refuse it, so it rides with the next trip.
        customer, product = data.customer, data.product
        if reads.later is not None:
            _LATER_REQUEST.defer(
                reads.later,
                (
                    data.request_id,
                    data.dealer_id,
                    customer.region,
                    product.product_line,
                    str(data.customer_tier),
                    data.urgent,
                    received_at,
                    False,
                ),
            )
        else:
            await lean.write_later(conn, [(_INSERT_REQUEST, _request_row(data, received_at))])
        facts = RequestFacts(
            data.request_id, data.dealer_id, customer.region, product.product_line, as_utc(received_at)
        )
        reads.request_stored(KnownRequest(facts, cancelled=False))
        return
    await lean.insert_unless_found(
        conn, _REQUEST_IS_KNOWN, {"request_id": data.request_id}, _INSERT_REQUEST, _request_row(data, received_at)
    )


def _request_row(data: ServiceRequestReceived, received_at: datetime) -> dict[str, Any]:
    return {
        "request_id": data.request_id,
        "dealer_id": data.dealer_id,
        "region": data.customer.region,
        "product_line": data.product.product_line,
        "customer_tier": str(data.customer_tier),
        "urgent": data.urgent,
        "received_at": received_at,
        "cancelled": False,
    }


def _stored_time(value: datetime | str) -> datetime:
    """A time column as read: SQLAlchemy's datetime, or on the lean path SQLite's text as SQLAlchemy stored it
    (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC)."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _known(row: tuple[Any, ...] | None) -> KnownRequest | None:
    if row is None:
        return None
    found = dict(zip(_REQUEST_COLUMNS, row, strict=True))
    facts = RequestFacts(
        request_id=found["request_id"],
        dealer_id=found["dealer_id"],
        region=found["region"],
        product_line=found["product_line"],
        received_at=_stored_time(found["received_at"]),
    )
    return KnownRequest(facts, bool(found["cancelled"]))


async def known_request(conn: AsyncConnection, request_id: str) -> KnownRequest | None:
    [rows] = await lean.query_many(conn, [(_FIND_REQUEST, {"request_id": request_id})])
    return _known(rows[0] if rows else None)


@dataclass(frozen=True)
class JobContext:
    """What a reaction that may create a request's job reads, in one trip: the request, whether its job exists
    already, and the technicians the job could go to."""

    request: KnownRequest | None
    has_job: bool
    candidates: list[Candidate]


async def job_context(conn: AsyncConnection, request_id: str) -> JobContext:
    reads = await chunk_reads(conn)
    if reads is not None and request_id in reads.requests:
        request = reads.requests[request_id]
        if request is None:
            return JobContext(None, request_id in reads.jobs, [])
        pair = (request.facts.region, request.facts.product_line)
        ranked = reads.candidates(pair)
        if ranked is None:  # a pair the chunk's first reads did not know (cannot happen; read it now)
            [rows] = await lean.query_many(conn, [(_CANDIDATES_OF_PAIR, _pair_key(pair))])
            reads.add_staff(pair, rows)
            ranked = reads.candidates(pair) or []
        return JobContext(request, request_id in reads.jobs, ranked)
    key = {"request_id": request_id}
    requests, jobs, candidates = await lean.query_many(
        conn,
        [(_FIND_REQUEST, key), (_JOB_OF_REQUEST, {"job_id": job_id_for(request_id)}), (_CANDIDATES_OF_REQUEST, key)],
    )
    return JobContext(
        _known(requests[0] if requests else None),
        bool(jobs),
        [
            Candidate(technician_id, center_id, dealer_id, open_jobs)
            for technician_id, center_id, dealer_id, open_jobs in candidates
        ],
    )


async def mark_request_cancelled(conn: AsyncConnection, request_id: str) -> None:
    await lean.write(conn, [(_CANCEL_REQUEST, {"the_request_id": request_id, "cancelled": True})])
    reads = kept_reads()
    if reads is not None:
        reads.request_cancelled(request_id)


def _pair_key(pair: Pair) -> dict[str, str]:
    return {"region": pair[0], "product_line": pair[1]}


async def chunk_reads(conn: AsyncConnection) -> ChunkReads | None:
    """What the running reaction's consumer chunk read (read now when this is the chunk's first reaction to
    ask): every request its events name, their jobs, and the candidates of their regions and product lines,
    in two trips for the whole chunk. None outside a chunk: the reaction reads for itself."""
    chunk = current_chunk()
    if chunk is None:
        return None
    reads = kept_reads()
    if reads is not None:
        return reads
    request_ids = list(dict.fromkeys(_request_ids(chunk.events)))
    lists = _in_lists(request_ids)
    request_of_job = {job_id_for(request_id): request_id for request_id in request_ids}
    job_lists = _in_lists(list(request_of_job))
    found = await lean.query_many(
        conn,
        [(_requests_in(len(ids)), ids) for ids in lists] + [(_jobs_in(len(ids)), ids) for ids in job_lists],
    )
    requests: dict[str, KnownRequest | None] = dict.fromkeys(request_ids)
    for rows in found[: len(lists)]:
        for row in rows:
            known = _known(row)
            assert known is not None
            requests[known.facts.request_id] = known
    jobs = {request_of_job[job_id] for rows in found[len(lists) :] for (job_id,) in rows}
    driver = lean.lean_driver(conn)
    reads = ChunkReads(requests, jobs, later=None if driver is None else Later(driver, conn.dialect))
    pairs = {(k.facts.region, k.facts.product_line) for k in requests.values() if k is not None}
    pairs.update(_received_pairs(chunk.events))
    ordered = sorted(pairs)
    staff = await lean.query_many(conn, [(_CANDIDATES_OF_PAIR, _pair_key(pair)) for pair in ordered])
    for pair, rows in zip(ordered, staff, strict=True):
        reads.add_staff(pair, rows)
    keep_reads(reads)
    return reads


def _request_ids(events: list[IncomingEvent[Any]]) -> list[str]:
    """The requests a chunk's events are about (intake's events all name theirs)."""
    return [request_id for e in events if isinstance(request_id := getattr(e.data, "request_id", None), str)]


def _received_pairs(events: list[IncomingEvent[Any]]) -> set[Pair]:
    return {
        (e.data.customer.region, e.data.product.product_line)
        for e in events
        if isinstance(e.data, ServiceRequestReceived)
    }


# --- the API's reads -----------------------------------------------------------------------------------------


async def _page(
    conn: AsyncConnection, query: Select, key: ColumnElement, limit: int, after: Any, newest_first: bool = False
) -> Page[dict[str, Any]]:
    """A keyset page on `key` (the views as stored; the routes validate them against their models)."""
    query = keyset_page(query, key, after=after, limit=limit, newest_first=newest_first)
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
    if request_id is not None:  # its job's id is derived from it: found by the primary key
        query = query.where(j.c.job_id == job_id_for(request_id))
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
