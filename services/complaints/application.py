"""complaints' use cases: each command runs in one transaction that loads the complaint from its events, lets
the aggregate decide, and appends the new events (outbox included), the read-model row and the deadlines the
timer must watch, together."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.complaints.commands import (
    AcknowledgeComplaint,
    Actor,
    CloseComplaint,
    EscalateComplaint,
    OpenComplaint,
    RecordCustomerResponse,
    ReopenComplaint,
    ResolveComplaint,
    WaitOnCustomer,
)
from services.complaints.domain import Complaint, Link
from services.complaints.read_model import (
    ComplaintFilter,
    complaints_naming,
    known_job,
    known_request,
    page_of_complaints,
    save_view,
    to_view,
    visible_view,
)
from services.complaints.sla import ComplaintSla
from shared.clock import Clock
from shared.contracts.complaints import ComplaintSource
from shared.domain import NotFound, RuleViolation, TimeRules
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.repository import Repository
from shared.eventstore.store import EventStore, Metadata
from shared.scheduling import cancel, deadlines, schedule


@dataclass
class ComplaintsDeps:
    db: Database
    store: EventStore
    clock: Clock
    time_rules: TimeRules
    sla: ComplaintSla
    low_satisfaction: int = 2  # a revisit scored this or lower opens a complaint
    unknown_link_grace: timedelta = timedelta(hours=1)  # how long a named request or job may take to arrive


class ComplaintsUnitOfWork:
    """Complaints in, complaints out, with their rows and deadlines, inside one transaction."""

    def __init__(self, conn: AsyncConnection, deps: ComplaintsDeps) -> None:
        self.conn = conn
        self.deps = deps
        self.complaints = Repository(conn, deps.store, Complaint)

    async def load(self, complaint_id: str) -> Complaint:
        return await self.complaints.load(complaint_id)

    async def exists(self, complaint_id: str) -> bool:
        return await self.complaints.exists(complaint_id)

    async def save(self, complaint: Complaint, metadata: Metadata) -> list[EventEnvelope]:
        stored = await self.complaints.save(complaint, metadata)
        if not stored:
            return []
        first_position = stored[0].position if stored[0].sequence == 1 else None
        await save_view(self.conn, complaint, first_position, self.deps.db.is_sqlite)
        await self._watch_deadlines(complaint)
        return stored

    async def _watch_deadlines(self, complaint: Complaint) -> None:
        """Make the timer's pending deadlines for this complaint exactly the ones its state calls for."""
        wanted = complaint.timer_deadlines()
        watched = (await self.conn.execute(
            select(deadlines.c.kind).where(deadlines.c.stream_id == complaint.id, deadlines.c.state == "pending")
        )).scalars().all()
        for kind in set(watched) - set(wanted):
            await cancel(self.conn, stream_id=complaint.id, kind=kind)
        for kind, due in wanted.items():
            await schedule(self.conn, stream_id=complaint.id, kind=kind, due_at=due)


def _visible(complaint: Complaint, actor: Actor) -> Complaint:
    if actor.dealer_scope is not None and complaint.dealer_id != actor.dealer_scope:
        raise NotFound(f"complaint {complaint.id} does not exist")
    return complaint


def _when(deps: ComplaintsDeps, requested: datetime | None, previous: datetime | None) -> datetime:
    return deps.time_rules.resolve(requested, deps.clock.now(), previous)


def _owned(actor: Actor, dealer_id: str | None) -> bool:
    return actor.dealer_scope is None or dealer_id == actor.dealer_scope


@dataclass(frozen=True)
class CaseLink:
    request_id: str | None
    job_id: str | None
    dealer_id: str | None
    awaited: bool = False  # a named id is not known yet (or, for a dealer, not its own: the same answer)


async def _linked_case(uow: ComplaintsUnitOfWork, cmd: OpenComplaint, actor: Actor) -> CaseLink:
    """The complaint's request, job and dealer. Known ids must fit together (a job belongs to the request, the
    dealer is the request's); an id complaints has not heard of yet is awaited, and so, for a dealer, is another
    dealer's (a dealer learns nothing about ids that are not its own)."""
    request = job = None
    if cmd.request_id is not None:
        request = await known_request(uow.conn, cmd.request_id)
        if request is None or not _owned(actor, request.dealer_id):
            return CaseLink(cmd.request_id, cmd.job_id, cmd.dealer_id, awaited=True)
    if cmd.job_id is not None:
        job = await known_job(uow.conn, cmd.job_id)
        if job is None or not _owned(actor, job.dealer_id):
            return CaseLink(cmd.request_id, cmd.job_id, cmd.dealer_id, awaited=True)
        if request is not None and job.request_id != request.request_id:
            raise RuleViolation(f"job {cmd.job_id} belongs to service request {job.request_id}, not to "
                                f"{cmd.request_id}", field="job_id")
    if request is None and job is None:
        return CaseLink(None, None, cmd.dealer_id)
    if request is None:
        request = await known_request(uow.conn, job.request_id)
    dealer_id = request.dealer_id if request is not None else job.dealer_id
    if cmd.dealer_id is not None and cmd.dealer_id != dealer_id:
        raise RuleViolation(f"the complaint's service request belongs to dealer {dealer_id}, not to "
                            f"{cmd.dealer_id}", field="dealer_id")
    return CaseLink(request.request_id if request is not None else job.request_id, cmd.job_id, dealer_id)


async def link_awaiting(uow: ComplaintsUnitOfWork, at: datetime, metadata: Metadata, *,
                        request_id: str | None = None, job_id: str | None = None) -> None:
    """A request or job just became known: confirm the links of the complaints that awaited it, once every id
    they named is known and fits (same request, and the complaint's dealer, if it has one, is the request's)."""
    for complaint_id in await complaints_naming(uow.conn, request_id=request_id, job_id=job_id):
        complaint = await uow.load(complaint_id)
        if complaint.link not in (Link.awaited, Link.unresolved):
            continue
        request = await known_request(uow.conn, complaint.request_id) if complaint.request_id else None
        job = await known_job(uow.conn, complaint.job_id) if complaint.job_id else None
        if (complaint.request_id and request is None) or (complaint.job_id and job is None):
            continue  # the other id is still on its way
        if request is not None and job is not None and job.request_id != request.request_id:
            continue
        if request is None:
            request = await known_request(uow.conn, job.request_id)
        dealer_id = request.dealer_id if request is not None else job.dealer_id
        if complaint.dealer_id is not None and complaint.dealer_id != dealer_id:
            continue  # another dealer's case: never linked, flagged when the grace period ends
        complaint.confirm_link(request.request_id if request is not None else job.request_id, dealer_id, at)
        await uow.save(complaint, metadata)


# --- command handlers -------------------------------------------------------------------------------------

async def open_complaint(cmd: OpenComplaint, actor: Actor, uow: ComplaintsUnitOfWork, meta: Metadata) -> Complaint:
    at = _when(uow.deps, cmd.occurred_at, None)
    case = await _linked_case(uow, cmd, actor)
    complaint = Complaint.open(
        str(uuid.uuid4()), request_id=case.request_id, job_id=case.job_id, dealer_id=case.dealer_id,
        category=cmd.category, severity=cmd.severity, source=ComplaintSource(cmd.channel.value),
        details=cmd.description, at=at, sla=uow.deps.sla,
    )
    if case.awaited:  # the grace period counts from now, not from a backdated occurred_at
        complaint.await_link(uow.deps.clock.now() + uow.deps.unknown_link_grace, at)
    await uow.save(complaint, meta)
    return complaint


Change = Callable[[Complaint, datetime], None]


async def _change(uow: ComplaintsUnitOfWork, actor: Actor, complaint_id: str, requested_at: datetime | None,
                  change: Change, meta: Metadata) -> Complaint:
    """Load, let the complaint decide at the step's time (checked against its previous step), save."""
    complaint = _visible(await uow.load(complaint_id), actor)
    change(complaint, _when(uow.deps, requested_at, complaint.last_step_at))
    await uow.save(complaint, meta)
    return complaint


async def acknowledge(cmd: AcknowledgeComplaint, actor: Actor, uow: ComplaintsUnitOfWork, meta: Metadata) -> Complaint:
    return await _change(uow, actor, cmd.complaint_id, cmd.occurred_at, lambda c, at: c.acknowledge(cmd.note, at), meta)


async def escalate(cmd: EscalateComplaint, actor: Actor, uow: ComplaintsUnitOfWork, meta: Metadata) -> Complaint:
    return await _change(uow, actor, cmd.complaint_id, cmd.occurred_at, lambda c, at: c.escalate(cmd.reason, at), meta)


async def wait_on_customer(cmd: WaitOnCustomer, actor: Actor, uow: ComplaintsUnitOfWork, meta: Metadata) -> Complaint:
    sla = uow.deps.sla
    return await _change(uow, actor, cmd.complaint_id, cmd.occurred_at,
                         lambda c, at: c.wait_on_customer(cmd.reason, at, sla), meta)


async def record_customer_response(cmd: RecordCustomerResponse, actor: Actor, uow: ComplaintsUnitOfWork,
                                   meta: Metadata) -> Complaint:
    sla = uow.deps.sla
    return await _change(uow, actor, cmd.complaint_id, cmd.occurred_at,
                         lambda c, at: c.record_customer_response(cmd.note, at, sla), meta)


async def resolve(cmd: ResolveComplaint, actor: Actor, uow: ComplaintsUnitOfWork, meta: Metadata) -> Complaint:
    return await _change(uow, actor, cmd.complaint_id, cmd.occurred_at,
                         lambda c, at: c.resolve(cmd.resolution, at), meta)


async def reopen(cmd: ReopenComplaint, actor: Actor, uow: ComplaintsUnitOfWork, meta: Metadata) -> Complaint:
    sla = uow.deps.sla
    return await _change(uow, actor, cmd.complaint_id, cmd.occurred_at, lambda c, at: c.reopen(cmd.reason, at, sla),
                         meta)


async def close(cmd: CloseComplaint, actor: Actor, uow: ComplaintsUnitOfWork, meta: Metadata) -> Complaint:
    return await _change(uow, actor, cmd.complaint_id, cmd.occurred_at,
                         lambda c, at: c.close(cmd.customer_confirmed, at), meta)


CommandHandler = Callable[[Any, Actor, ComplaintsUnitOfWork, Metadata], Awaitable[Complaint]]

COMMAND_HANDLERS: dict[type, CommandHandler] = {
    OpenComplaint: open_complaint,
    AcknowledgeComplaint: acknowledge,
    EscalateComplaint: escalate,
    WaitOnCustomer: wait_on_customer,
    RecordCustomerResponse: record_customer_response,
    ResolveComplaint: resolve,
    ReopenComplaint: reopen,
    CloseComplaint: close,
}


class ComplaintsApplication:
    """The one entry point of complaints' use cases, for routes and tests alike."""

    def __init__(self, deps: ComplaintsDeps) -> None:
        self.deps = deps

    async def handle(self, command: Any, actor: Actor, meta: Metadata) -> dict[str, Any]:
        handler = COMMAND_HANDLERS[type(command)]
        async with self.deps.db.transaction() as conn:
            complaint = await handler(command, actor, ComplaintsUnitOfWork(conn, self.deps), meta)
        return to_view(complaint)

    async def get(self, complaint_id: str, actor: Actor) -> dict[str, Any]:
        async with self.deps.db.read() as conn:
            row = await visible_view(conn, complaint_id)
        if row is None or not _owned(actor, row.dealer_id):
            raise NotFound(f"complaint {complaint_id} does not exist")
        return json.loads(row.view)

    async def list(self, actor: Actor, where: ComplaintFilter, *, by_urgency: bool, after: int | str | None,
                   limit: int) -> tuple[list[dict[str, Any]], int | str | None]:
        """A dealer lists only complaints about its own requests, whatever it asks for."""
        if actor.dealer_scope is not None:
            where = replace(where, dealer_id=actor.dealer_scope)
        async with self.deps.db.read() as conn:
            return await page_of_complaints(conn, where, by_urgency=by_urgency, after=after, limit=limit)
