"""complaints' use cases: one handler per command, keyed by the command's class, run by the kernel in one
unit of work (`shared.kernel`): the complaint is loaded from its events, decides, and the commit appends the new
events (outbox included), projects its row and reconciles the deadlines the timer must watch, together."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.complaints.commands import (
    AcknowledgeComplaint,
    CloseComplaint,
    EscalateComplaint,
    OpenComplaint,
    RecordCustomerResponse,
    ReopenComplaint,
    ResolveComplaint,
    WaitOnCustomer,
)
from services.complaints.domain import Complaint, Link
from services.complaints.read_model import complaints_naming, known_job, known_request
from services.complaints.sla import ComplaintSla
from services.complaints.views import ComplaintView, to_view
from shared.auth import Actor
from shared.clock import Clock
from shared.contracts.complaints import ComplaintSource
from shared.domain import RuleViolation
from shared.kernel import UnitOfWork


@dataclass(frozen=True)
class ComplaintPolicy:
    """complaints' settings besides the SLA, as handlers get them (by type)."""

    low_satisfaction: int = 2  # a revisit scored this or lower opens a complaint
    unknown_link_grace: timedelta = timedelta(hours=1)  # how long a named request or job may take to arrive


@dataclass(frozen=True)
class CaseLink:
    request_id: str | None
    job_id: str | None
    dealer_id: str | None
    awaited: bool = False  # a named id is not known yet (or, for a dealer, not its own: the same answer)


async def _linked_case(uow: UnitOfWork, cmd: OpenComplaint, actor: Actor) -> CaseLink:
    """The complaint's request, job and dealer. Known ids must fit together (a job belongs to the request, the
    dealer is the request's); an id complaints has not heard of yet is awaited, and so, for a dealer, is another
    dealer's (a dealer learns nothing about ids that are not its own)."""
    request = job = None
    if cmd.request_id is not None:
        request = await known_request(uow.conn, cmd.request_id)
        if request is None or not actor.sees_dealer(request.dealer_id):
            return CaseLink(cmd.request_id, cmd.job_id, cmd.dealer_id, awaited=True)
    if cmd.job_id is not None:
        job = await known_job(uow.conn, cmd.job_id)
        if job is None or not actor.sees_dealer(job.dealer_id):
            return CaseLink(cmd.request_id, cmd.job_id, cmd.dealer_id, awaited=True)
        if request is not None and job.request_id != request.request_id:
            raise RuleViolation(
                f"job {cmd.job_id} belongs to service request {job.request_id}, not to {cmd.request_id}", field="job_id"
            )
    if request is None and job is None:
        return CaseLink(None, None, cmd.dealer_id)
    if request is None:
        request = await known_request(uow.conn, job.request_id)
    dealer_id = request.dealer_id if request is not None else job.dealer_id
    if cmd.dealer_id is not None and cmd.dealer_id != dealer_id:
        raise RuleViolation(
            f"the complaint's service request belongs to dealer {dealer_id}, not to {cmd.dealer_id}", field="dealer_id"
        )
    return CaseLink(request.request_id if request is not None else job.request_id, cmd.job_id, dealer_id)


async def link_awaiting(
    uow: UnitOfWork, at: datetime, *, request_id: str | None = None, job_id: str | None = None
) -> None:
    """A request or job just became known: confirm the links of the complaints that awaited it, once every id
    they named is known and fits (same request, and the complaint's dealer, if it has one, is the request's)."""
    for complaint_id in await complaints_naming(uow.conn, request_id=request_id, job_id=job_id):
        complaint = await uow.get(Complaint, complaint_id)
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


# --- command handlers -------------------------------------------------------------------------------------


async def open_complaint(
    command: OpenComplaint, actor: Actor, uow: UnitOfWork, sla: ComplaintSla, policy: ComplaintPolicy, clock: Clock
) -> ComplaintView:
    at = uow.step_time(command.occurred_at)
    case = await _linked_case(uow, command, actor)
    complaint = uow.add(
        Complaint.open(
            str(uuid.uuid4()),
            request_id=case.request_id,
            job_id=case.job_id,
            dealer_id=case.dealer_id,
            category=command.category,
            severity=command.severity,
            source=ComplaintSource(command.channel.value),
            details=command.description,
            at=at,
            sla=sla,
        )
    )
    if case.awaited:  # the grace period counts from now, not from a backdated occurred_at
        complaint.await_link(clock.now() + policy.unknown_link_grace, at)
    return to_view(complaint)


Change = Callable[[Complaint, datetime], None]


async def _change(
    uow: UnitOfWork, actor: Actor, complaint_id: str, requested_at: datetime | None, change: Change
) -> ComplaintView:
    """Load, let the complaint decide at the step's time (checked against its previous step)."""
    complaint = await uow.get_visible(Complaint, complaint_id, actor)
    change(complaint, uow.step_time(requested_at, complaint))
    return to_view(complaint)


async def acknowledge(command: AcknowledgeComplaint, actor: Actor, uow: UnitOfWork) -> ComplaintView:
    return await _change(
        uow, actor, command.complaint_id, command.occurred_at, lambda c, at: c.acknowledge(command.note, at)
    )


async def escalate(command: EscalateComplaint, actor: Actor, uow: UnitOfWork) -> ComplaintView:
    return await _change(
        uow, actor, command.complaint_id, command.occurred_at, lambda c, at: c.escalate(command.reason, at)
    )


async def wait_on_customer(command: WaitOnCustomer, actor: Actor, uow: UnitOfWork, sla: ComplaintSla) -> ComplaintView:
    return await _change(
        uow, actor, command.complaint_id, command.occurred_at, lambda c, at: c.wait_on_customer(command.reason, at, sla)
    )


async def record_customer_response(
    command: RecordCustomerResponse, actor: Actor, uow: UnitOfWork, sla: ComplaintSla
) -> ComplaintView:
    return await _change(
        uow,
        actor,
        command.complaint_id,
        command.occurred_at,
        lambda c, at: c.record_customer_response(command.note, at, sla),
    )


async def resolve(command: ResolveComplaint, actor: Actor, uow: UnitOfWork) -> ComplaintView:
    return await _change(
        uow, actor, command.complaint_id, command.occurred_at, lambda c, at: c.resolve(command.resolution, at)
    )


async def reopen(command: ReopenComplaint, actor: Actor, uow: UnitOfWork, sla: ComplaintSla) -> ComplaintView:
    return await _change(
        uow, actor, command.complaint_id, command.occurred_at, lambda c, at: c.reopen(command.reason, at, sla)
    )


async def close(command: CloseComplaint, actor: Actor, uow: UnitOfWork) -> ComplaintView:
    return await _change(
        uow, actor, command.complaint_id, command.occurred_at, lambda c, at: c.close(command.customer_confirmed, at)
    )


COMMANDS = {
    OpenComplaint: open_complaint,
    AcknowledgeComplaint: acknowledge,
    EscalateComplaint: escalate,
    WaitOnCustomer: wait_on_customer,
    RecordCustomerResponse: record_customer_response,
    ResolveComplaint: resolve,
    ReopenComplaint: reopen,
    CloseComplaint: close,
}
