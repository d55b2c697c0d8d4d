"""dispatch's use cases: each command runs in one transaction that loads its aggregate from its events, lets it
decide, and appends the new events (outbox included) together with the read-model rows and the SLA timers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch import queries
from services.dispatch.commands import (
    AcceptJob,
    Actor,
    AssignJob,
    CompleteJob,
    RecordArrival,
    RecordRevisit,
    RegisterServiceCenter,
    RegisterTechnician,
    UpdateServiceCenter,
    UpdateTechnician,
)
from services.dispatch.domain import Assignee, Job
from services.dispatch.read_model import center_view, job_view, save_center, save_job, save_technician, technician_view
from services.dispatch.sla import SlaPolicy
from services.dispatch.workforce import UNCHANGED, ServiceCenter, Technician
from shared.clock import Clock
from shared.contracts.dispatch import AssignedBy, SlaKind
from shared.domain import Conflict, Forbidden, NotFound, RuleViolation, TimeRules
from shared.eventstore.database import Database
from shared.eventstore.repository import Repository
from shared.eventstore.store import EventStore, Metadata
from shared.eventstore.tables import events
from shared.scheduling import cancel, schedule


@dataclass
class DispatchDeps:
    db: Database
    store: EventStore
    clock: Clock
    time_rules: TimeRules
    sla: SlaPolicy


class DispatchUnitOfWork:
    """Jobs, centers and technicians in and out, inside one transaction."""

    def __init__(self, conn: AsyncConnection, deps: DispatchDeps) -> None:
        self.conn = conn
        self.deps = deps
        self.jobs = Repository(conn, deps.store, Job)
        self.centers = Repository(conn, deps.store, ServiceCenter)
        self.technicians = Repository(conn, deps.store, Technician)
        self._watched: dict[str, dict[SlaKind, datetime | None]] = {}  # job id → deadlines watched when loaded

    async def job(self, job_id: str) -> Job:
        job = await self.jobs.load(job_id)
        self._watched[job_id] = job.pending_deadlines()
        return job

    async def center(self, center_id: str, *, referenced_as: str | None = None) -> ServiceCenter:
        """`referenced_as`: the body field naming it, when an unknown center is bad input (422), not a 404."""
        return await self._load(self.centers, ServiceCenter.stream_id(center_id), f"service center {center_id}",
                                referenced_as)

    async def technician(self, technician_id: str, *, referenced_as: str | None = None) -> Technician:
        return await self._load(self.technicians, Technician.stream_id(technician_id), f"technician {technician_id}",
                                referenced_as)

    async def own_center(self, center_id: str, actor: Actor, *, referenced_as: str | None = None) -> ServiceCenter:
        """A center the actor may act on: a dealer-scoped actor only its dealer's centers; any other is as
        unknown to it as one that does not exist (404, or 422 when named in a body)."""
        center = await self.center(center_id, referenced_as=referenced_as)
        if actor.dealer_scope is not None and center.dealer_id != actor.dealer_scope:
            raise _missing(f"service center {center_id}", referenced_as)
        return center

    async def own_technician(self, technician_id: str, actor: Actor, *,
                             referenced_as: str | None = None) -> Technician:
        """A technician the actor may act on: a dealer-scoped actor only the technicians of its centers."""
        technician = await self.technician(technician_id, referenced_as=referenced_as)
        if actor.dealer_scope is not None:
            center_stream = ServiceCenter.stream_id(technician.center_id)
            center = await self.centers.load(center_stream) if await self.centers.exists(center_stream) else None
            if center is None or center.dealer_id != actor.dealer_scope:
                raise _missing(f"technician {technician_id}", referenced_as)
        return technician

    @staticmethod
    async def _load(repository: Repository, stream_id: str, what: str, referenced_as: str | None):
        try:
            return await repository.load(stream_id)
        except NotFound:
            raise _missing(what, referenced_as) from None

    async def save_job(self, job: Job, metadata: Metadata) -> None:
        """The job's new events, its row, and its live SLA timers, which follow the job's state: a deadline is
        scheduled when the job starts watching it, cancelled when it stops (met, announced, or cancelled)."""
        stored = await self.jobs.save(job, metadata)
        if not stored:
            return
        created_position = stored[0].position if stored[0].sequence == 1 else None
        await save_job(self.conn, job, created_position)
        before = self._watched.get(job.id, {})
        self._watched[job.id] = after = job.pending_deadlines()
        for kind, due in after.items():
            if due == before.get(kind):
                continue
            if due is not None:
                await schedule(self.conn, stream_id=job.id, kind=kind.value, due_at=due)
            else:
                await cancel(self.conn, stream_id=job.id, kind=kind.value)

    async def save_center(self, center: ServiceCenter, metadata: Metadata) -> None:
        stored = await self.centers.save(center, metadata)
        if stored:
            position = stored[0].position if stored[0].sequence == 1 else None
            await save_center(self.conn, center, position)

    async def save_technician(self, technician: Technician, metadata: Metadata) -> None:
        stored = await self.technicians.save(technician, metadata)
        if stored:
            position = stored[0].position if stored[0].sequence == 1 else None
            await save_technician(self.conn, technician, position)

    async def timer_metadata(self, job_id: str, deadline_name: str) -> Metadata:
        """A timer's events continue the chain that created the job; the deadline is their cause."""
        correlation = (await self.conn.execute(
            select(events.c.correlation_id).where(events.c.stream_id == job_id, events.c.version == 1)
        )).scalar_one()
        return Metadata(correlation_id=correlation, causation_id=str(uuid.uuid5(uuid.NAMESPACE_URL, deadline_name)))


def _missing(what: str, referenced_as: str | None) -> Exception:
    if referenced_as:
        return RuleViolation(f"{what} does not exist", field=referenced_as)
    return NotFound(f"{what} does not exist")


def _when(uow: DispatchUnitOfWork, requested: datetime | None, previous: datetime | None) -> datetime:
    return uow.deps.time_rules.resolve(requested, uow.deps.clock.now(), previous)


def visible(actor: Actor, dealer_id: str | None, technician_id: str | None) -> bool:
    """A dealer-scoped token sees the jobs of its dealer's requests and nothing else, whatever its other roles;
    a technician the jobs assigned to them; staff everything."""
    if actor.dealer_scope is not None:
        return dealer_id == actor.dealer_scope
    return actor.technician_scope is None or technician_id == actor.technician_scope


async def _job_for(uow: DispatchUnitOfWork, job_id: str, actor: Actor) -> Job:
    job = await uow.job(job_id)
    # A dealer never learns that another dealer's job exists (404); a technician acting on a job that is not
    # theirs is refused by the job itself (403), which is clearer when it was just re-assigned away from them.
    if actor.dealer_scope is not None and not visible(actor, job.dealer_id, job.technician_id):
        raise NotFound(f"job {job_id} does not exist")
    return job


# --- command handlers: reference data -----------------------------------------------------------------------

async def register_center(cmd: RegisterServiceCenter, actor: Actor, uow: DispatchUnitOfWork,
                          meta: Metadata) -> dict[str, Any]:
    cmd = replace(cmd, dealer_id=_own_dealer(actor, cmd.dealer_id))
    if await uow.centers.exists(ServiceCenter.stream_id(cmd.center_id)):
        raise Conflict(f"service center {cmd.center_id} is already registered", existing_id=cmd.center_id)
    center = ServiceCenter.register(cmd.center_id, cmd.name, cmd.region, cmd.kind, cmd.dealer_id, uow.deps.clock.now())
    await uow.save_center(center, meta)
    return center_view(center)


async def update_center(cmd: UpdateServiceCenter, actor: Actor, uow: DispatchUnitOfWork,
                        meta: Metadata) -> dict[str, Any]:
    center = await uow.own_center(cmd.center_id, actor)
    if cmd.dealer_id is not UNCHANGED:
        _own_dealer(actor, cmd.dealer_id)
    center.update(uow.deps.clock.now(), name=cmd.name, region=cmd.region, kind=cmd.kind, dealer_id=cmd.dealer_id)
    await uow.save_center(center, meta)
    return center_view(center)


async def register_technician(cmd: RegisterTechnician, actor: Actor, uow: DispatchUnitOfWork,
                              meta: Metadata) -> dict[str, Any]:
    await uow.own_center(cmd.center_id, actor, referenced_as="center_id")
    if await uow.technicians.exists(Technician.stream_id(cmd.technician_id)):
        raise Conflict(f"technician {cmd.technician_id} is already registered", existing_id=cmd.technician_id)
    technician = Technician.register(cmd.technician_id, cmd.center_id, cmd.name, cmd.skills, cmd.active,
                                     uow.deps.clock.now())
    await uow.save_technician(technician, meta)
    return technician_view(technician)


async def update_technician(cmd: UpdateTechnician, actor: Actor, uow: DispatchUnitOfWork,
                            meta: Metadata) -> dict[str, Any]:
    technician = await uow.own_technician(cmd.technician_id, actor)
    if isinstance(cmd.center_id, str):
        await uow.own_center(cmd.center_id, actor, referenced_as="center_id")
    technician.update(uow.deps.clock.now(), center_id=cmd.center_id, name=cmd.name, skills=cmd.skills,
                      active=cmd.active)
    await uow.save_technician(technician, meta)
    return technician_view(technician)


# --- command handlers: jobs -----------------------------------------------------------------------------------

async def assign(cmd: AssignJob, actor: Actor, uow: DispatchUnitOfWork, meta: Metadata) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    technician = await uow.own_technician(cmd.technician_id, actor, referenced_as="technician_id")
    assignee = Assignee(technician.technician_id, technician.center_id, technician.active, frozenset(technician.skills))
    job.assign(assignee, AssignedBy.manual, uow.deps.sla, _when(uow, cmd.occurred_at, job.last_step_at))
    await uow.save_job(job, meta)
    return job_view(job)


async def accept(cmd: AcceptJob, actor: Actor, uow: DispatchUnitOfWork, meta: Metadata) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.accept(actor.technician_scope, _when(uow, cmd.occurred_at, job.last_step_at))
    await uow.save_job(job, meta)
    return job_view(job)


async def arrive(cmd: RecordArrival, actor: Actor, uow: DispatchUnitOfWork, meta: Metadata) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.arrive(actor.technician_scope, _when(uow, cmd.occurred_at, job.last_step_at))
    await uow.save_job(job, meta)
    return job_view(job)


async def complete(cmd: CompleteJob, actor: Actor, uow: DispatchUnitOfWork, meta: Metadata) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.complete(actor.technician_scope, cmd.fixed, cmd.resolution, _when(uow, cmd.occurred_at, job.last_step_at))
    await uow.save_job(job, meta)
    return job_view(job)


async def revisit(cmd: RecordRevisit, actor: Actor, uow: DispatchUnitOfWork, meta: Metadata) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.record_revisit(cmd.satisfaction, cmd.nps, cmd.channel, cmd.comment,
                       _when(uow, cmd.occurred_at, job.last_step_at))
    await uow.save_job(job, meta)
    return job_view(job)


CommandHandler = Callable[[Any, Actor, DispatchUnitOfWork, Metadata], Awaitable[dict[str, Any]]]

COMMAND_HANDLERS: dict[type, CommandHandler] = {
    RegisterServiceCenter: register_center,
    UpdateServiceCenter: update_center,
    RegisterTechnician: register_technician,
    UpdateTechnician: update_technician,
    AssignJob: assign,
    AcceptJob: accept,
    RecordArrival: arrive,
    CompleteJob: complete,
    RecordRevisit: revisit,
}


class DispatchApplication:
    """The one entry point of dispatch's use cases and reads, for routes and tests alike."""

    def __init__(self, deps: DispatchDeps) -> None:
        self.deps = deps

    async def handle(self, command: Any, actor: Actor, meta: Metadata) -> dict[str, Any]:
        handler = COMMAND_HANDLERS[type(command)]
        async with self.deps.db.transaction() as conn:
            return await handler(command, actor, DispatchUnitOfWork(conn, self.deps), meta)

    async def job(self, job_id: str, actor: Actor) -> dict[str, Any]:
        async with self.deps.db.read() as conn:
            row = await queries.job_row(conn, job_id)
        if row is None or not visible(actor, row.dealer_id, row.technician_id):
            raise NotFound(f"job {job_id} does not exist")
        return json.loads(row.view)

    async def jobs(self, actor: Actor, *, request_id: str | None, technician_id: str | None, status: str | None,
                   dealer_id: str | None, limit: int, after: int | None) -> queries.Page:
        """Newest first. A dealer lists the jobs of its requests, a technician their own."""
        if actor.dealer_scope is not None:
            dealer_id = _own(dealer_id, actor.dealer_scope, "dealer_id")
        elif actor.technician_scope is not None:
            technician_id = _own(technician_id, actor.technician_scope, "technician_id")
        async with self.deps.db.read() as conn:
            return await queries.jobs_page(conn, request_id=request_id, technician_id=technician_id, status=status,
                                           dealer_id=dealer_id, limit=limit, after=after)

    async def queue(self, technician_id: str, actor: Actor, *, limit: int, after: str | None) -> queries.Page:
        if actor.dealer_scope is None and actor.technician_scope is not None and technician_id != actor.technician_scope:
            raise Forbidden("a technician may only read their own queue")
        async with self.deps.db.read() as conn:
            if actor.dealer_scope is not None and not await queries.technician_of_dealer(conn, technician_id,
                                                                                          actor.dealer_scope):
                raise NotFound(f"technician {technician_id} does not exist")
            return await queries.queue_page(conn, technician_id, limit, after, dealer_id=actor.dealer_scope)

    async def center(self, center_id: str, actor: Actor) -> dict[str, Any]:
        async with self.deps.db.read() as conn:
            view = await queries.center_view(conn, center_id)
        if view is None or (actor.dealer_scope is not None and view["dealer_id"] != actor.dealer_scope):
            raise NotFound(f"service center {center_id} does not exist")
        return view

    async def centers(self, actor: Actor, *, dealer_id: str | None, **filters: Any) -> queries.Page:
        if actor.dealer_scope is not None:
            dealer_id = _own(dealer_id, actor.dealer_scope, "dealer_id")
        async with self.deps.db.read() as conn:
            return await queries.centers_page(conn, dealer_id=dealer_id, **filters)

    async def technician(self, technician_id: str, actor: Actor) -> dict[str, Any]:
        async with self.deps.db.read() as conn:
            view = await queries.technician_view(conn, technician_id)
            if view is not None and actor.dealer_scope is not None and not await queries.technician_of_dealer(
                    conn, technician_id, actor.dealer_scope):
                view = None
        if view is None or (actor.dealer_scope is None and actor.technician_scope is not None
                            and technician_id != actor.technician_scope):
            raise NotFound(f"technician {technician_id} does not exist")
        return view

    async def technicians(self, actor: Actor, **filters: Any) -> queries.Page:
        async with self.deps.db.read() as conn:
            return await queries.technicians_page(conn, dealer_id=actor.dealer_scope, **filters)


def _own_dealer(actor: Actor, requested: str | None) -> str | None:
    """A dealer-scoped actor registers and edits centers for its own dealer only (403 naming the field)."""
    if actor.dealer_scope is None:
        return requested
    if requested is not None and requested != actor.dealer_scope:
        raise Forbidden("a dealer may only manage its own centers", field="dealer_id")
    return actor.dealer_scope


def _own(requested: str | None, scope: str, field: str) -> str:
    if requested is not None and requested != scope:
        raise Forbidden(f"you may only list your own jobs ({field} {scope})", field=field)
    return scope
