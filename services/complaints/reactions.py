"""How complaints follows the other services: a reaction per contract event class, run by the kernel in a unit
of work over the consumer's transaction, chained to its cause.

It learns which service requests (and their dealers) and jobs exist, to link complaints to them and scope
dealers; and a revisit with low satisfaction opens a complaint by itself, stamped with the revisit's time
and chained to it. That complaint's id is derived from the job, so the same revisit arriving again, even as
another event, finds it already open."""

from __future__ import annotations

from services.complaints.application import ComplaintPolicy, link_awaiting
from services.complaints.domain import Complaint, revisit_complaint_id
from services.complaints.read_model import known_job, known_request, remember_job, remember_request
from services.complaints.sla import ComplaintSla
from shared.contracts.dispatch import JobCreated, RevisitDone
from shared.contracts.intake import ServiceRequestReceived
from shared.contracts.topics import DISPATCH, INTAKE
from shared.events import IncomingEvent
from shared.kernel import UnitOfWork

CONSUMES = [INTAKE, DISPATCH]


async def remember_received_request(event: IncomingEvent[ServiceRequestReceived], uow: UnitOfWork) -> None:
    data = event.data
    await remember_request(uow.conn, data.request_id, data.dealer_id)
    await link_awaiting(uow, event.time, request_id=data.request_id)


async def remember_created_job(event: IncomingEvent[JobCreated], uow: UnitOfWork) -> None:
    data = event.data
    await remember_job(uow.conn, data.job_id, data.request_id, data.dealer_id)
    await link_awaiting(uow, event.time, job_id=data.job_id)


async def open_from_low_revisit(
    event: IncomingEvent[RevisitDone], uow: UnitOfWork, sla: ComplaintSla, policy: ComplaintPolicy
) -> None:
    data = event.data
    if data.satisfaction > policy.low_satisfaction:
        return
    if await uow.exists(Complaint, revisit_complaint_id(data.job_id)):
        return
    # job.created shares the revisit's partition (both keyed by job), so the job is normally known by now.
    job = await known_job(uow.conn, data.job_id)
    request = None if job is not None else await known_request(uow.conn, data.request_id)
    dealer_id = job.dealer_id if job is not None else (request.dealer_id if request is not None else None)
    uow.add(
        Complaint.open_from_revisit(
            job_id=data.job_id,
            request_id=data.request_id,
            dealer_id=dealer_id,
            satisfaction=data.satisfaction,
            channel=str(data.channel),
            comment=data.comment,
            at=event.time,
            sla=sla,
        )
    )


REACTIONS = {
    ServiceRequestReceived: remember_received_request,
    JobCreated: remember_created_job,
    RevisitDone: open_from_low_revisit,
}

__all__ = ["CONSUMES", "REACTIONS"]
