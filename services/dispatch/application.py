"""dispatch's use cases: one handler per command, keyed by the command's class, run by the kernel in one unit
of work (`shared.kernel`): the aggregate is loaded from its events and decides, and the commit appends the new
events (outbox included) together with the read-model rows and the job's SLA timers. Reads (`DispatchReads`)
answer from the read model."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from services.dispatch import queries
from services.dispatch.commands import (
    AcceptJob,
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
from services.dispatch.read_model import center_view, job_view, technician_view
from services.dispatch.sla import SlaPolicy
from services.dispatch.workforce import UNCHANGED, ServiceCenter, Technician
from shared.auth import Actor
from shared.clock import Clock
from shared.contracts.dispatch import AssignedBy
from shared.domain import Conflict, Forbidden, NotFound, RuleViolation
from shared.eventstore.database import Database
from shared.http.pagination import Page
from shared.kernel import UnitOfWork


def _missing(what: str, referenced_as: str | None) -> Exception:
    if referenced_as:
        return RuleViolation(f"{what} does not exist", field=referenced_as)
    return NotFound(f"{what} does not exist")


async def _center(uow: UnitOfWork, center_id: str, referenced_as: str | None = None) -> ServiceCenter:
    """`referenced_as`: the body field naming it, when an unknown center is bad input (422), not a 404."""
    center = await uow.find(ServiceCenter, ServiceCenter.stream_id(center_id))
    if center is None:
        raise _missing(f"service center {center_id}", referenced_as)
    return center


async def own_center(
    uow: UnitOfWork, center_id: str, actor: Actor, *, referenced_as: str | None = None
) -> ServiceCenter:
    """A center the actor may act on: a dealer-scoped actor only its dealer's centers; any other is as
    unknown to it as one that does not exist (404, or 422 when named in a body)."""
    center = await _center(uow, center_id, referenced_as)
    if not actor.sees_dealer(center.dealer_id):
        raise _missing(f"service center {center_id}", referenced_as)
    return center


async def own_technician(
    uow: UnitOfWork, technician_id: str, actor: Actor, *, referenced_as: str | None = None
) -> Technician:
    """A technician the actor may act on: a dealer-scoped actor only the technicians of its centers."""
    technician = await uow.find(Technician, Technician.stream_id(technician_id))
    if technician is None:
        raise _missing(f"technician {technician_id}", referenced_as)
    if actor.dealer_scope is not None:
        center = await uow.find(ServiceCenter, ServiceCenter.stream_id(technician.center_id))
        if center is None or not actor.sees_dealer(center.dealer_id):
            raise _missing(f"technician {technician_id}", referenced_as)
    return technician


async def _job_for(uow: UnitOfWork, job_id: str, actor: Actor) -> Job:
    job = await uow.get(Job, job_id)
    # A dealer never learns that another dealer's job exists (404); a technician acting on a job that is not
    # theirs is refused by the job itself (403), which is clearer when it was just re-assigned away from them.
    if not actor.sees_dealer(job.dealer_id):
        raise NotFound(f"job {job_id} does not exist")
    return job


# --- command handlers: reference data -----------------------------------------------------------------------


async def register_center(cmd: RegisterServiceCenter, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    cmd = replace(cmd, dealer_id=_own_dealer(actor, cmd.dealer_id))
    if await uow.exists(ServiceCenter, ServiceCenter.stream_id(cmd.center_id)):
        raise Conflict(f"service center {cmd.center_id} is already registered", existing_id=cmd.center_id)
    center = uow.add(ServiceCenter.register(cmd.center_id, cmd.name, cmd.region, cmd.kind, cmd.dealer_id, clock.now()))
    return center_view(center)


async def update_center(cmd: UpdateServiceCenter, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    center = await own_center(uow, cmd.center_id, actor)
    if cmd.dealer_id is not UNCHANGED:
        _own_dealer(actor, cmd.dealer_id)
    center.update(clock.now(), name=cmd.name, region=cmd.region, kind=cmd.kind, dealer_id=cmd.dealer_id)
    return center_view(center)


async def register_technician(cmd: RegisterTechnician, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    await own_center(uow, cmd.center_id, actor, referenced_as="center_id")
    if await uow.exists(Technician, Technician.stream_id(cmd.technician_id)):
        raise Conflict(f"technician {cmd.technician_id} is already registered", existing_id=cmd.technician_id)
    technician = uow.add(
        Technician.register(cmd.technician_id, cmd.center_id, cmd.name, cmd.skills, cmd.active, clock.now())
    )
    return technician_view(technician)


async def update_technician(cmd: UpdateTechnician, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    technician = await own_technician(uow, cmd.technician_id, actor)
    if isinstance(cmd.center_id, str):
        await own_center(uow, cmd.center_id, actor, referenced_as="center_id")
    technician.update(clock.now(), center_id=cmd.center_id, name=cmd.name, skills=cmd.skills, active=cmd.active)
    return technician_view(technician)


# --- command handlers: jobs -----------------------------------------------------------------------------------


async def assign(cmd: AssignJob, actor: Actor, uow: UnitOfWork, sla: SlaPolicy) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    technician = await own_technician(uow, cmd.technician_id, actor, referenced_as="technician_id")
    assignee = Assignee(technician.technician_id, technician.center_id, technician.active, frozenset(technician.skills))
    job.assign(assignee, AssignedBy.manual, sla, uow.step_time(cmd.occurred_at, job))
    return job_view(job)


async def accept(cmd: AcceptJob, actor: Actor, uow: UnitOfWork) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.accept(actor.technician_scope, uow.step_time(cmd.occurred_at, job))
    return job_view(job)


async def arrive(cmd: RecordArrival, actor: Actor, uow: UnitOfWork) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.arrive(actor.technician_scope, uow.step_time(cmd.occurred_at, job))
    return job_view(job)


async def complete(cmd: CompleteJob, actor: Actor, uow: UnitOfWork) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.complete(actor.technician_scope, cmd.fixed, cmd.resolution, uow.step_time(cmd.occurred_at, job), cmd.reason)
    return job_view(job)


async def revisit(cmd: RecordRevisit, actor: Actor, uow: UnitOfWork) -> dict[str, Any]:
    job = await _job_for(uow, cmd.job_id, actor)
    job.record_revisit(cmd.satisfaction, cmd.nps, cmd.channel, cmd.comment, uow.step_time(cmd.occurred_at, job))
    return job_view(job)


COMMANDS = {
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


class DispatchReads:
    """dispatch's reads, answered from the read model within the actor's scope (404 outside it)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def job(self, job_id: str, actor: Actor) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = await queries.job_row(conn, job_id)
        if row is None or not actor.sees(row.dealer_id, row.technician_id):
            raise NotFound(f"job {job_id} does not exist")
        return json.loads(row.view)

    async def jobs(
        self,
        actor: Actor,
        *,
        request_id: str | None,
        technician_id: str | None,
        status: str | None,
        dealer_id: str | None,
        limit: int,
        after: int | None,
    ) -> Page[dict[str, Any]]:
        """Newest first. A dealer lists the jobs of its requests, a technician their own."""
        if actor.dealer_scope is not None:
            dealer_id = _own(dealer_id, actor.dealer_scope, "dealer_id")
        elif actor.technician_scope is not None:
            technician_id = _own(technician_id, actor.technician_scope, "technician_id")
        async with self.db.read() as conn:
            return await queries.jobs_page(
                conn,
                request_id=request_id,
                technician_id=technician_id,
                status=status,
                dealer_id=dealer_id,
                limit=limit,
                after=after,
            )

    async def queue(self, technician_id: str, actor: Actor, *, limit: int, after: str | None) -> Page[dict[str, Any]]:
        if (
            actor.dealer_scope is None
            and actor.technician_scope is not None
            and technician_id != actor.technician_scope
        ):
            raise Forbidden("a technician may only read their own queue")
        async with self.db.read() as conn:
            if actor.dealer_scope is not None and not await queries.technician_of_dealer(
                conn, technician_id, actor.dealer_scope
            ):
                raise NotFound(f"technician {technician_id} does not exist")
            return await queries.queue_page(conn, technician_id, limit, after, dealer_id=actor.dealer_scope)

    async def center(self, center_id: str, actor: Actor) -> dict[str, Any]:
        async with self.db.read() as conn:
            view = await queries.center_view(conn, center_id)
        if view is None or (actor.dealer_scope is not None and view["dealer_id"] != actor.dealer_scope):
            raise NotFound(f"service center {center_id} does not exist")
        return view

    async def centers(self, actor: Actor, *, dealer_id: str | None, **filters: Any) -> Page[dict[str, Any]]:
        if actor.dealer_scope is not None:
            dealer_id = _own(dealer_id, actor.dealer_scope, "dealer_id")
        async with self.db.read() as conn:
            return await queries.centers_page(conn, dealer_id=dealer_id, **filters)

    async def technician(self, technician_id: str, actor: Actor) -> dict[str, Any]:
        async with self.db.read() as conn:
            view = await queries.technician_view(conn, technician_id)
            if (
                view is not None
                and actor.dealer_scope is not None
                and not await queries.technician_of_dealer(conn, technician_id, actor.dealer_scope)
            ):
                view = None
        if view is None or (
            actor.dealer_scope is None
            and actor.technician_scope is not None
            and technician_id != actor.technician_scope
        ):
            raise NotFound(f"technician {technician_id} does not exist")
        return view

    async def technicians(self, actor: Actor, **filters: Any) -> Page[dict[str, Any]]:
        async with self.db.read() as conn:
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
