"""analytics' reads and writes of its tables (the only module that speaks SQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache

from sqlalchemy import Table, and_, bindparam, case, delete, func, inspect, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.analytics.alerts import AlertSamples
from services.analytics.facts import RequestFact, RevisitFact
from services.analytics.metrics import Window
from services.analytics.records import COMPLAINT_OPENED, AnalyticsEvent
from services.analytics.tables import Generation, analytics_state, generation
from shared.eventstore.database import Database


@dataclass(frozen=True)
class ProjectionState:
    active: int
    building: int | None
    rebuild_owner: str | None
    rebuild_heartbeat: int | None


def _dialect(conn: AsyncConnection):
    return sqlite if conn.dialect.name == "sqlite" else postgresql


async def prepare(db: Database) -> ProjectionState:
    """The state row and the active generation's tables exist (first start: generation 1)."""
    async with db.transaction() as conn:
        await conn.execute(_dialect(conn).insert(analytics_state).values(id=1, active_generation=1)
                           .on_conflict_do_nothing())
        state = await read_state(conn)
        await create_generation(conn, state.active)
    return state


_STATE = select(analytics_state).where(analytics_state.c.id == 1)
_STATE_LOCKED = {"share": _STATE.with_for_update(read=True), "update": _STATE.with_for_update()}


async def read_state(conn: AsyncConnection, *, lock: str | None = None) -> ProjectionState:
    """`lock` "share" (a projection write) or "update" (a rebuild's switch) serializes the two on PostgreSQL;
    SQLite serializes every write transaction anyway."""
    query = _STATE_LOCKED[lock] if lock and conn.dialect.name != "sqlite" else _STATE
    row = (await conn.execute(query)).one()
    return ProjectionState(row.active_generation, row.building_generation, row.rebuild_owner,
                           row.rebuild_heartbeat)


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


async def serialize_on(conn: AsyncConnection, key: str) -> None:
    """On PostgreSQL, hold a transaction lock on `key` (a job or request id), so that replicas folding the same
    request from events of different partitions take turns and each sees the other's events. SQLite runs one
    write transaction at a time anyway."""
    if conn.dialect.name != "sqlite":
        await conn.execute(_ADVISORY_LOCK, {"key": key})


async def set_state(conn: AsyncConnection, **values) -> None:
    await conn.execute(update(analytics_state).where(analytics_state.c.id == 1).values(**values))


async def create_generation(conn: AsyncConnection, number: int) -> Generation:
    tables = generation(number)
    await conn.run_sync(tables.metadata.create_all)
    return tables


async def drop_lookup_indexes(conn: AsyncConnection, tables: Generation) -> None:
    """A replay loads the events table in bulk and builds its lookup indexes (by request, by job) afterwards:
    a third faster than keeping them up to date row by row. The unique index on the event id stays."""
    for index in tables.events.indexes:
        await conn.run_sync(index.drop)


async def create_lookup_indexes(conn: AsyncConnection, tables: Generation) -> None:
    for index in tables.events.indexes:
        await conn.run_sync(index.create)


async def existing_generations(conn: AsyncConnection) -> list[int]:
    names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    found = set()
    for name in names:
        parts = name.split("_")
        if len(parts) == 3 and parts[0] == "analytics" and parts[1][:1] == "g" and parts[1][1:].isdigit():
            found.add(int(parts[1][1:]))
    return sorted(found)


async def drop_generation(conn: AsyncConnection, number: int) -> None:
    await conn.run_sync(generation(number).metadata.drop_all)


# --- statements of the live path, built once per generation and dialect (SQLAlchemy then caches their SQL) --

@dataclass(frozen=True)
class _Statements:
    insert_event: object
    insert_events_sqlite: str
    events_of_request: object
    request_of_job: object
    upsert_request: object
    delete_revisits: object
    insert_revisits: object


def _upsert(table: Table, key: str, *, update: bool, qmark: bool = False) -> str:
    """`INSERT … ON CONFLICT` SQL, which SQLite (3.24+) and PostgreSQL both read. As `text()` SQLAlchemy caches
    it, unlike its dialect inserts with `on_conflict_*`, which 2.0 compiles again on every execution."""
    names = [c.name for c in table.c if not (c.primary_key and c.autoincrement is True and c.name != key)]
    action = ("DO UPDATE SET " + ", ".join(f'"{n}" = excluded."{n}"' for n in names if n != key)) if update \
        else "DO NOTHING"
    columns = ", ".join(f'"{n}"' for n in names)
    values = ", ".join("?" if qmark else f":{n}" for n in names)
    return f'INSERT INTO "{table.name}" ({columns}) VALUES ({values}) ON CONFLICT ("{key}") {action}'


@lru_cache(maxsize=16)
def _statements(number: int, dialect_name: str) -> _Statements:
    tables = generation(number)
    e = tables.events.c
    jobs = select(e.job_id).where(e.request_id == bindparam("request_id"), e.job_id.is_not(None),
                                  e.type != COMPLAINT_OPENED)
    return _Statements(
        insert_event=text(_upsert(tables.events, "event_id", update=False)),
        insert_events_sqlite=_upsert(tables.events, "event_id", update=False, qmark=True),
        # A request's events, and complaints that name only one of its jobs.
        events_of_request=select(tables.events).where(or_(
            e.request_id == bindparam("request_id"),
            and_(e.request_id.is_(None), e.type == COMPLAINT_OPENED, e.job_id.in_(jobs)),
        )),
        request_of_job=select(e.request_id).where(e.job_id == bindparam("job_id"), e.request_id.is_not(None),
                                                  e.type != COMPLAINT_OPENED).limit(1),
        upsert_request=text(_upsert(tables.requests, "request_id", update=True)),
        delete_revisits=delete(tables.revisits).where(tables.revisits.c.request_id == bindparam("request_id")),
        insert_revisits=tables.revisits.insert(),
    )


def _live(conn: AsyncConnection, tables: Generation) -> _Statements:
    return _statements(tables.number, conn.dialect.name)


# --- events ----------------------------------------------------------------------------------------------

def _event_values(e: AnalyticsEvent) -> tuple:
    """In the column order of the events table."""
    return (e.event_id, e.type, e.request_id, e.job_id, e.time, e.recorded_at, e.sequence,
            json.dumps(e.data, separators=(",", ":")))


def _event_row(e: AnalyticsEvent) -> dict:
    return {"event_id": e.event_id, "type": e.type, "request_id": e.request_id, "job_id": e.job_id, "time": e.time,
            "recorded_at": e.recorded_at, "sequence": e.sequence, "data": json.dumps(e.data, separators=(",", ":"))}


_REQUEST_FIELDS = tuple(f.name for f in fields(RequestFact))
_REVISIT_FIELDS = tuple(f.name for f in fields(RevisitFact))


def _row(fact, names: tuple[str, ...]) -> dict:
    """A flat dataclass as a row (`dataclasses.asdict` deep-copies, far too slow for a replay)."""
    return {name: getattr(fact, name) for name in names}


def _event(row) -> AnalyticsEvent:
    return AnalyticsEvent(row.event_id, row.type, row.request_id, row.job_id, row.time, row.recorded_at,
                          row.sequence, json.loads(row.data))


async def insert_events(conn: AsyncConnection, tables: Generation, events: Sequence[AnalyticsEvent]) -> int:
    """Append events that are not stored yet (by event id); return how many were new (single inserts)."""
    if not events:
        return 0
    statements = _live(conn, tables)
    if len(events) == 1:
        return (await conn.execute(statements.insert_event, _event_row(events[0]))).rowcount
    if conn.dialect.name == "sqlite":
        # A replay's batches: straight to the driver, which saves SQLAlchemy's per-row parameter processing
        # (a third of the replay's time).
        await conn.exec_driver_sql(statements.insert_events_sqlite, [_event_values(e) for e in events])
    else:
        await conn.execute(statements.insert_event, [_event_row(e) for e in events])
    return len(events)


async def request_of_job(conn: AsyncConnection, tables: Generation, job_id: str) -> str | None:
    return (await conn.execute(_live(conn, tables).request_of_job, {"job_id": job_id})).scalar_one_or_none()


async def events_of_request(conn: AsyncConnection, tables: Generation, request_id: str) -> list[AnalyticsEvent]:
    """A request's events, and complaints that name only one of its jobs."""
    rows = await conn.execute(_live(conn, tables).events_of_request, {"request_id": request_id})
    return [_event(row) for row in rows]


async def load_events(conn: AsyncConnection, tables: Generation, *, recorded_until: int | None = None,
                      after_position: int = 0, until_position: int | None = None,
                      except_ranges: Sequence[tuple[int, int]] = ()) -> list[AnalyticsEvent]:
    """Stored events, optionally only those recorded by a moment, or within positions outside some ranges
    `(after, until]`."""
    e = tables.events.c
    query = select(tables.events).where(e.position > after_position)
    if until_position is not None:
        query = query.where(e.position <= until_position)
    if recorded_until is not None:
        query = query.where(e.recorded_at <= recorded_until)
    for after, until in except_ranges:
        query = query.where(~e.position.between(after + 1, until))
    return [_event(row) for row in await conn.execute(query)]


async def last_position(conn: AsyncConnection, tables: Generation) -> int:
    e = tables.events.c
    return (await conn.execute(select(e.position).order_by(e.position.desc()).limit(1))).scalar_one_or_none() or 0


# --- facts -----------------------------------------------------------------------------------------------

async def save_request(conn: AsyncConnection, tables: Generation, fact: RequestFact,
                       revisits: Sequence[RevisitFact]) -> None:
    """Replace one request's facts (its row and its revisits). A request has revisit rows only if it has
    revisit events, and those are never removed: without any, there is nothing to replace."""
    statements = _live(conn, tables)
    await conn.execute(statements.upsert_request, _row(fact, _REQUEST_FIELDS))
    if revisits:
        await conn.execute(statements.delete_revisits, {"request_id": fact.request_id})
        await conn.execute(statements.insert_revisits, [_row(r, _REVISIT_FIELDS) for r in revisits])


async def save_all(conn: AsyncConnection, tables: Generation, facts: Sequence[RequestFact],
                   revisits: Sequence[RevisitFact], chunk: int = 5000) -> None:
    """Bulk insert into empty fact tables (a rebuild)."""
    for table, names, items in ((tables.requests, _REQUEST_FIELDS, facts), (tables.revisits, _REVISIT_FIELDS, revisits)):
        for i in range(0, len(items), chunk):
            part = items[i:i + chunk]
            if conn.dialect.name == "sqlite":  # straight to the driver, as for a replay's events
                columns = ", ".join(f'"{n}"' for n in names)
                sql = f'INSERT INTO "{table.name}" ({columns}) VALUES ({", ".join("?" for _ in names)})'
                await conn.exec_driver_sql(sql, [tuple(getattr(x, n) for n in names) for x in part])
            else:
                await conn.execute(table.insert(), [_row(x, names) for x in part])


def _request(row) -> RequestFact:
    return RequestFact(**row._mapping)


def _revisit(row) -> RevisitFact:
    return RevisitFact(**row._mapping)


async def requests_where(conn: AsyncConnection, tables: Generation, condition, dealer_key: str | None) -> list[RequestFact]:
    query = select(tables.requests).where(condition)
    if dealer_key is not None:
        query = query.where(tables.requests.c.dealer_key == dealer_key)
    return [_request(row) for row in await conn.execute(query)]


def throughput_condition(tables: Generation, window: Window):
    """Requests a throughput window can count: its cohort, its resolutions, and the backlog at its end."""
    r = tables.requests.c
    return or_(
        r.received_at.between(window.start, window.end - 1),
        r.resolved_at.between(window.start, window.end - 1),
        and_(r.received_at < window.end, or_(r.resolved_at.is_(None), r.resolved_at >= window.end),
             or_(r.cancelled_at.is_(None), r.cancelled_at >= window.end)),
    )


def cohort_condition(tables: Generation, window: Window):
    return tables.requests.c.received_at.between(window.start, window.end - 1)


def open_since_condition(tables: Generation, since: int, until: int):
    """Requests received before `until` that were still open at `since` or later (trends, backlog growth)."""
    r = tables.requests.c
    return or_(
        and_(r.received_at < until, or_(r.resolved_at.is_(None), r.resolved_at >= since),
             or_(r.cancelled_at.is_(None), r.cancelled_at >= since)),
        r.received_at.between(since, until - 1),
        r.resolved_at.between(since, until - 1),
    )


async def revisits_in(conn: AsyncConnection, tables: Generation, window: Window,
                      dealer_key: str | None) -> list[RevisitFact]:
    v = tables.revisits.c
    query = select(tables.revisits).where(v.time.between(window.start, window.end - 1))
    if dealer_key is not None:
        query = query.where(v.dealer_key == dealer_key)
    return [_revisit(row) for row in await conn.execute(query)]


# --- alert samples ---------------------------------------------------------------------------------------

def _open_at(r, instant: int):
    """1 for a request in the backlog at `instant` (FactRequest.open_at in SQL), else 0."""
    return case((and_(r.received_at < instant, or_(r.resolved_at.is_(None), r.resolved_at >= instant),
                      or_(r.cancelled_at.is_(None), r.cancelled_at >= instant)), 1), else_=0)


async def alert_samples(conn: AsyncConnection, tables: Generation, since: int, now: int) -> AlertSamples:
    """Counts over `[since, now]` per dealer and center (and the backlog overall), summed in the database."""
    r, v = tables.requests.c, tables.revisits.c
    samples = AlertSamples()
    for scope, column, answer_column in (("dealer", r.dealer_key, v.dealer_key), ("center", r.center_id, v.center_id)):
        jobs = select(column, func.sum(r.jobs_completed), func.sum(r.jobs_sla_met)).where(
            r.received_at.between(since, now), column.is_not(None)).group_by(column)
        for key, completed, met in await conn.execute(jobs):
            samples.jobs[(scope, key)] = (int(completed or 0), int(met or 0))
        answers = select(answer_column, func.count(), func.sum(case((v.satisfaction >= 4, 1), else_=0))).where(
            v.time.between(since, now), answer_column.is_not(None)).group_by(answer_column)
        for key, responses, satisfied in await conn.execute(answers):
            samples.answers[(scope, key)] = (int(responses), int(satisfied or 0))
    backlog = select(r.dealer_key, func.sum(_open_at(r, now + 1)), func.sum(_open_at(r, since))).where(
        r.received_at <= now, or_(r.resolved_at.is_(None), r.resolved_at >= since),
        or_(r.cancelled_at.is_(None), r.cancelled_at >= since)).group_by(r.dealer_key)
    overall = [0, 0]
    for key, open_now, open_then in await conn.execute(backlog):
        open_now, open_then = int(open_now or 0), int(open_then or 0)
        overall[0] += open_now
        overall[1] += open_then
        if key is not None:
            samples.backlog[("dealer", key)] = (open_now, open_then)
    samples.backlog[("all", "all")] = (overall[0], overall[1])
    return samples
