"""dispatch's read side: a row per job, center and technician (the API's view as JSON plus the columns lists
filter and sort on), the technicians' skills for the auto-assignment query, and the projection of intake's
requests that a job is made from. Rows are written in the transaction that appends the events."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.chunk_reads import ChunkReads, Later, kept_reads
from services.dispatch.domain import LOAD_STATUSES, Job
from services.dispatch.workforce import ServiceCenter, Technician
from shared.clock import rfc3339
from shared.contracts.dispatch import SlaKind
from shared.events import EventEnvelope
from shared.eventstore import lean
from shared.eventstore.store import actor_text
from shared.eventstore.tables import UtcDateTime
from shared.kernel import Projections, UnitOfWork
from shared.scheduling import SCHEDULE, deadline_name

metadata = MetaData()

# Intake's requests as dispatch needs them (from `service_request.received`); not in dispatch's event store
# because they are intake's facts: replaying `intake.events` rebuilds them.
dispatch_requests = Table(
    "dispatch_requests",
    metadata,
    Column("request_id", String(80), primary_key=True),
    Column("dealer_id", String(80)),
    Column("region", String(80), nullable=False),
    Column("product_line", String(80), nullable=False),
    Column("customer_tier", String(20), nullable=False),
    Column("urgent", Boolean, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("cancelled", Boolean, nullable=False, default=False),
)

dispatch_jobs = Table(
    "dispatch_jobs",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("created_position", BigInteger, nullable=False, unique=True),
    # One job per request, even if all else fails: a job's id is derived from its request's (`job_id_for`), so the
    # primary key keeps it, and a request's job is found by that id (no index of its own on the random ids).
    Column("request_id", String(80), nullable=False),
    Column("status", String(24), nullable=False),
    Column("dealer_id", String(80)),
    Column("technician_id", String(64)),
    Column("is_load", Boolean, nullable=False),  # counts toward its technician's open jobs
    Column("queue_key", String(80), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("view", Text, nullable=False),
)
# A technician's queue (their open jobs in queue order) and their open jobs counted, from one index.
Index("ix_dispatch_jobs_open", dispatch_jobs.c.technician_id, dispatch_jobs.c.is_load, dispatch_jobs.c.queue_key)
Index("ix_dispatch_jobs_status", dispatch_jobs.c.status, dispatch_jobs.c.created_position)
Index("ix_dispatch_jobs_dealer", dispatch_jobs.c.dealer_id, dispatch_jobs.c.created_position)

# Each technician's open jobs (the jobs rows with `is_load`), kept by the job projector as those rows change, so
# that ranking the candidates reads a row per technician instead of counting their jobs on every triage; no row
# for none. Written by the job projector alone: a rebuild empties it with dispatch_jobs and counts afresh.
dispatch_technician_load = Table(
    "dispatch_technician_load",
    metadata,
    Column("technician_id", String(64), primary_key=True),
    Column("open_jobs", Integer, nullable=False),
)


@event.listens_for(dispatch_technician_load, "after_create")
def _count_the_open_jobs(target: Table, connection: Connection, **_: Any) -> None:
    """Fill the table where `create_all` makes it beside jobs already stored: a development database from before
    the table existed (`DATABASE_AUTO_CREATE`, as `make run` starts dispatch) would otherwise rank every technician
    as idle until a rebuild. Migration 0002 fills it the same way; a new database has no jobs yet."""
    if inspect(connection).has_table(dispatch_jobs.name):
        connection.execute(
            text(
                "INSERT INTO dispatch_technician_load (technician_id, open_jobs) "
                "SELECT technician_id, count(*) FROM dispatch_jobs "
                "WHERE is_load AND technician_id IS NOT NULL GROUP BY technician_id"
            )
        )


dispatch_centers = Table(
    "dispatch_centers",
    metadata,
    Column("center_id", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("region", String(80), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("dealer_id", String(80)),
    Column("view", Text, nullable=False),
)
Index("ix_dispatch_centers_region", dispatch_centers.c.region)

dispatch_technicians = Table(
    "dispatch_technicians",
    metadata,
    Column("technician_id", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("center_id", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("view", Text, nullable=False),
)
Index("ix_dispatch_technicians_center", dispatch_technicians.c.center_id)

dispatch_technician_skills = Table(
    "dispatch_technician_skills",
    metadata,
    Column("technician_id", String(64), primary_key=True),
    Column("product_line", String(80), primary_key=True),
)
Index("ix_dispatch_skills_line", dispatch_technician_skills.c.product_line)


@lru_cache(maxsize=4096)
def _rfc3339(value: datetime) -> str:
    return rfc3339(value)


def _time(value: datetime | None) -> str | None:
    # A job's view spells the same few times again and again (its creation, deadlines, history), and the jobs of
    # one triage burst share them: remembered, not formatted each time.
    return _rfc3339(value) if value else None


_SLA_KINDS = tuple((kind, kind.value) for kind in SlaKind)
# One encoder for every view: `json.dumps(..., ensure_ascii=False)` builds a new one per call. The same text.
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def queue_key(job: Job, created_position: int) -> str:
    """Sorts a technician's queue as text: priority, then the next due time (none last), then age."""
    return f"{_queue_key_head(job)}{created_position:020d}"


def _queue_key_head(job: Job) -> str:
    """The queue key up to the age (what the job's first position completes)."""
    # isoformat of the naive time: the same text as strftime("%Y-%m-%dT%H:%M:%S.%f"), at a fifth of its cost
    next_due = job.next_due
    due = next_due.replace(tzinfo=None).isoformat(timespec="microseconds") if next_due else "~"
    return f"{str.__str__(job.priority)}|{due}|"


def job_view(job: Job) -> dict[str, Any]:
    """The job as the API shows it."""
    return {
        "id": job.id,
        "request_id": job.request_id,
        "status": str(job.status),
        "mode": str(job.mode),
        "priority": str(job.priority),
        "region": job.region,
        "product_line": job.product_line,
        "dealer_id": job.dealer_id,
        "center_id": job.center_id,
        "technician_id": job.technician_id,
        "created_at": _time(job.created_at),
        "accept_due": _time(job.accept_due),
        "arrive_due": _time(job.arrive_due),
        "accepted_at": _time(job.accepted_at),
        "arrived_at": _time(job.arrived_at),
        "completed_at": _time(job.completed_at),
        "sla": {
            name: {
                "due": _time(job.due(kind)),
                "done_at": _time(job.done_at(kind)),
                "breached": job.is_breached(kind),
            }
            for kind, name in _SLA_KINDS
        },
        "visits": [
            {
                "technician_id": v.technician_id,
                "arrived_at": _time(v.arrived_at),
                "completed_at": _time(v.completed_at),
                "fixed": v.fixed,
                "resolution": v.resolution,
                "reason": v.reason and str(v.reason),
            }
            for v in job.visits
        ],
        "revisit": None
        if job.revisit is None
        else {
            "satisfaction": job.revisit.satisfaction,
            "nps": job.revisit.nps,
            "channel": str(job.revisit.channel),
            "comment": job.revisit.comment,
            "time": _time(job.revisit.at),
        },
        "cancel_reason": job.cancel_reason,
        "version": job.version,
        "history": [
            {"type": t, "time": _time(at), "actor": actor}
            for (t, at), actor in zip(job.history, job.history_actors(), strict=True)
        ],
    }


def center_view(center: ServiceCenter) -> dict[str, Any]:
    return {
        "id": center.center_id,
        "name": center.name,
        "region": center.region,
        "kind": str(center.kind),
        "dealer_id": center.dealer_id,
        "version": center.version,
    }


def technician_view(technician: Technician) -> dict[str, Any]:
    return {
        "id": technician.technician_id,
        "center_id": technician.center_id,
        "name": technician.name,
        "skills": list(technician.skills),
        "active": technician.active,
        "version": technician.version,
    }


# Rows are inserted when their aggregate's first event is appended and updated afterwards: plain statements,
# because SQLAlchemy 2.0 cannot cache an INSERT .. ON CONFLICT and would compile one per event.


_JOB_STATE = lean.Prepared(
    select(dispatch_jobs.c.created_position, dispatch_jobs.c.technician_id, dispatch_jobs.c.is_load).where(
        dispatch_jobs.c.job_id == bindparam("job_id")
    )
)
_JOB_ROW = ["status", "dealer_id", "technician_id", "is_load", "queue_key", "version", "view"]
_INSERT_JOB = lean.Prepared(insert(dispatch_jobs), columns=["job_id", "request_id", "created_position", *_JOB_ROW])
_UPDATE_JOB = lean.Prepared(
    update(dispatch_jobs).where(dispatch_jobs.c.job_id == bindparam("the_job_id")), columns=_JOB_ROW
)
# Plain SQL that both SQLite and PostgreSQL take; compiled once (lean.Prepared), whichever path runs it.
_ADD_LOAD = lean.Prepared(
    text(
        "INSERT INTO dispatch_technician_load (technician_id, open_jobs) VALUES (:technician_id, :delta) "
        "ON CONFLICT (technician_id) DO UPDATE SET open_jobs = dispatch_technician_load.open_jobs + excluded.open_jobs"
    )
)

# A technician without open jobs has no row (as a rebuild leaves it).
_DROP_IDLE = lean.Prepared(
    delete(dispatch_technician_load).where(
        dispatch_technician_load.c.technician_id == bindparam("technician_id"),
        dispatch_technician_load.c.open_jobs == 0,
    )
)


def load_changes(before: tuple[str | None, bool], after: tuple[str | None, bool]) -> dict[str, int]:
    """How a job's row moving from `before` to `after` (technician, counts as load) changes open jobs."""
    changes: dict[str, int] = {}
    for (technician_id, is_load), sign in ((before, -1), (after, 1)):
        if technician_id is not None and is_load:
            changes[technician_id] = changes.get(technician_id, 0) + sign
    return {technician_id: delta for technician_id, delta in changes.items() if delta}


class LaterWrite:
    """A statement a chunk's reaction leaves for the next trip to the writer (what `lean.write_later` does), its
    values given as a tuple in the order of `names`: no look-up of the driver, no row dict and no walk over
    its columns per write. `names` is checked against the compiled statement once per dialect, and the bind
    processing is SQLAlchemy's own, so the row is stored byte for byte as through `lean.write_later`."""

    __slots__ = ("statement", "names", "_bound")

    def __init__(self, statement: lean.Prepared, names: Sequence[str]) -> None:
        self.statement, self.names = statement, tuple(names)
        self._bound: dict[str, tuple[str, tuple[tuple[int, Callable[[Any], Any]], ...]]] = {}

    def defer(self, later: Later, values: tuple[Any, ...]) -> None:
        later.driver.defer_statement(*self.bound(later.dialect, values))

    def bound(self, dialect: Dialect, values: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        """The statement's SQL and `values` bind-processed, as the driver takes them."""
        bound = self._bound.get(dialect.name)
        if bound is None:
            compiled = self.statement.compiled(dialect)
            if compiled.names != self.names or compiled.defaults.keys() - set(self.names):
                raise RuntimeError(f"{compiled.sql} binds {compiled.names}, not {self.names}")
            processed = tuple((i, p) for i, p in enumerate(compiled.processors) if p is not None)
            bound = self._bound[dialect.name] = (compiled.sql, processed)
        sql, processed = bound
        if processed:
            bind = list(values)
            for i, process in processed:
                if bind[i] is not None:
                    bind[i] = process(bind[i])
            values = tuple(bind)
        return sql, values


_LATER_JOB = LaterWrite(_INSERT_JOB, ["job_id", "created_position", "request_id", *_JOB_ROW])
_LATER_LOAD = LaterWrite(_ADD_LOAD, ["technician_id", "delta"])
_LATER_DEADLINE = LaterWrite(lean.Prepared(SCHEDULE), ["name", "stream_id", "kind", "due_at"])


def _job_row(job: Job) -> tuple[bool, dict[str, Any]]:
    """Whether the job counts toward its technician's open jobs, and its row's `_JOB_ROW` values but the queue
    key's age (`queue_key` completes `_queue_key_head` with the first event's position)."""
    is_load = job.technician_id is not None and job.status in LOAD_STATUSES
    return is_load, {
        "status": str(job.status),
        "dealer_id": job.dealer_id,
        "technician_id": job.technician_id,
        "is_load": is_load,
        "queue_key": _queue_key_head(job),
        "version": job.version,
        "view": _to_json(job_view(job)),
    }


async def save_job(conn: AsyncConnection, job: Job, created_position: int | None) -> None:
    """Insert the job's row when `created_position` (its first event's) is given, else update it; its
    technician's open jobs follow (on the lean path: a trip to read the row's state, one to write)."""
    reads = kept_reads()
    first_save = created_position is not None
    before: tuple[str | None, bool] = (None, False)
    if created_position is None:
        [(created_position, *state)] = await lean.query(conn, _JOB_STATE, {"job_id": job.id})
        before = (state[0], bool(state[1]))
    is_load, row = _job_row(job)
    row["queue_key"] = queue_key(job, created_position)
    writes: list[tuple[lean.Prepared, lean.Row]]
    if first_save:
        first = {"job_id": job.id, "request_id": job.request_id, "created_position": created_position}
        writes = [(_INSERT_JOB, {**first, **row})]
    else:
        writes = [(_UPDATE_JOB, {"the_job_id": job.id, **row})]
    changes = load_changes(before, (job.technician_id, is_load))
    for technician_id, delta in sorted(changes.items()):
        writes.append((_ADD_LOAD, {"technician_id": technician_id, "delta": delta}))
        if delta < 0:
            writes.append((_DROP_IDLE, {"technician_id": technician_id}))
    if reads is None:
        await lean.write(conn, writes)
        return
    # In a consumer chunk the job's row rides with the next trip (the next event's, or the chunk's last): the
    # append before it took the job's stream, so no other row can hold its keys; a failure would fail the chunk.
    await lean.write_later(conn, writes)
    reads.job_saved(job.request_id, changes)  # the chunk's next triages rank on these numbers


def append_new_job_later(uow: UnitOfWork, reads: ChunkReads, later: Later, job: Job) -> None:
    """A new job of a consumer chunk on SQLite's lean path, instead of `uow.add(job)`: what the unit of work's
    commit would write for it (its events and their outbox rows, its SLA deadlines), its row and its technician's
    open jobs, the same rows in the same order, all left for the next trip to the writer
    (`EventStore.append_later`): no trip of its own. The row needs the position of the job's first event, so it
    is finished on the writer's thread, in that trip.

    Nothing can refuse them unless the database fails: the chunk's reads say the job does not exist, and on
    SQLite the chunk holds the writer, so no other writer can take the job's stream or its keys meanwhile. Should
    one fail anyway, the trip that runs it fails and the consumer retries the chunk record by record (where
    the unit of work appends as usual). The caller's last act: nothing after it may fail the event."""
    job.recorded_by(actor_text(uow.actor))
    pending = job.take_pending()
    dialect = later.dialect
    schedule = [
        _LATER_DEADLINE.bound(dialect, (deadline_name(job.id, kind), job.id, kind, due))
        for kind, due in job.due_deadlines().items()
    ]
    job_id, request_id, technician_id = job.id, job.request_id, job.technician_id
    is_load, fields = _job_row(job)
    head = fields["queue_key"]
    values = [fields[name] for name in _JOB_ROW]
    at_queue_key = _JOB_ROW.index("queue_key")
    load = _LATER_LOAD.bound(dialect, (technician_id, 1)) if is_load else None

    def on_writer(raw: sqlite3.Connection, positions: list[int]) -> None:
        # On the writer's thread, once the events' positions are known: the job's row takes the first one.
        created_position = positions[0]
        for statement in schedule:
            raw.execute(*statement)
        values[at_queue_key] = f"{head}{created_position:020d}"  # as `queue_key`
        raw.execute(*_LATER_JOB.bound(dialect, (job_id, created_position, request_id, *values)))
        if load is not None:
            raw.execute(*load)

    uow.store.append_later(
        later.driver,
        dialect,
        stream_id=job_id,
        stream_type=job.stream_type,
        expected_version=job.version - len(pending),
        new_events=pending,
        metadata=uow.metadata,
        actor=uow.actor,
        then=on_writer,
    )
    reads.job_saved(request_id, {technician_id: 1} if is_load and technician_id is not None else {})


async def save_center(conn: AsyncConnection, center: ServiceCenter, position: int | None) -> None:
    row = {
        "region": center.region,
        "kind": str(center.kind),
        "dealer_id": center.dealer_id,
        "view": json.dumps(center_view(center), ensure_ascii=False),
    }
    if position is None:
        await conn.execute(
            update(dispatch_centers).where(dispatch_centers.c.center_id == center.center_id).values(**row)
        )
    else:
        await conn.execute(insert(dispatch_centers).values(center_id=center.center_id, position=position, **row))


async def save_technician(conn: AsyncConnection, technician: Technician, position: int | None) -> None:
    """The technician's row and skills (replaced as a whole: a technician has a handful)."""
    technician_id = technician.technician_id
    row = {
        "center_id": technician.center_id,
        "active": technician.active,
        "view": json.dumps(technician_view(technician), ensure_ascii=False),
    }
    if position is None:
        await conn.execute(
            update(dispatch_technicians).where(dispatch_technicians.c.technician_id == technician_id).values(**row)
        )
    else:
        await conn.execute(insert(dispatch_technicians).values(technician_id=technician_id, position=position, **row))
    await conn.execute(
        delete(dispatch_technician_skills).where(dispatch_technician_skills.c.technician_id == technician_id)
    )
    if technician.skills:
        await conn.execute(
            insert(dispatch_technician_skills),
            [{"technician_id": technician_id, "product_line": s} for s in technician.skills],
        )


# The unit of work runs these after each append (and the rebuild for every stream): a new aggregate's first
# event has sequence 1 and its position keys the new row.


def _first_position(stored: Sequence[EventEnvelope]) -> int | None:
    return stored[0].position if stored[0].sequence == 1 else None


async def project_job(conn: AsyncConnection, job: Job, stored: Sequence[EventEnvelope]) -> None:
    await save_job(conn, job, _first_position(stored))


async def project_center(conn: AsyncConnection, center: ServiceCenter, stored: Sequence[EventEnvelope]) -> None:
    await save_center(conn, center, _first_position(stored))


async def project_technician(conn: AsyncConnection, technician: Technician, stored: Sequence[EventEnvelope]) -> None:
    await save_technician(conn, technician, _first_position(stored))


PROJECTIONS = Projections()
PROJECTIONS.register(Job, project_job, dispatch_jobs, dispatch_technician_load)
PROJECTIONS.register(ServiceCenter, project_center, dispatch_centers)
PROJECTIONS.register(Technician, project_technician, dispatch_technicians, dispatch_technician_skills)


__all__ = [
    "PROJECTIONS",
    "metadata",
    "dispatch_centers",
    "dispatch_jobs",
    "dispatch_requests",
    "dispatch_technician_load",
    "dispatch_technician_skills",
    "dispatch_technicians",
    "center_view",
    "job_view",
    "queue_key",
    "save_center",
    "LaterWrite",
    "append_new_job_later",
    "save_job",
    "save_technician",
    "technician_view",
]
