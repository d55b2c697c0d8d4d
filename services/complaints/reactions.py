"""How complaints follows the other services: event type -> handler, the one table the consumer runs.

It learns which service requests (and their dealers) and jobs exist, to link complaints to them and scope
dealers; and a revisit with low satisfaction opens a complaint by itself, stamped with the revisit's time
and chained to it. That complaint's id is derived from the job, so the same revisit arriving again, even as
another event, finds it already open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from services.complaints.application import ComplaintsDeps, ComplaintsUnitOfWork, link_awaiting
from services.complaints.domain import Complaint, revisit_complaint_id
from services.complaints.read_model import known_job, known_request, remember_job, remember_request
from shared.contracts.dispatch import JobCreated, RevisitDone
from shared.contracts.intake import ServiceRequestReceived
from shared.contracts.topics import DISPATCH, INTAKE
from shared.events import IncomingEvent
from shared.eventstore.store import caused_by
from shared.messaging.consumer import Handler

CONSUMES = [INTAKE, DISPATCH]

Reaction = Callable[[ComplaintsDeps, IncomingEvent, AsyncConnection], Awaitable[None]]


async def remember_received_request(deps: ComplaintsDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    data: ServiceRequestReceived = event.data
    await remember_request(conn, data.request_id, data.dealer_id, deps.db.is_sqlite)
    await link_awaiting(ComplaintsUnitOfWork(conn, deps), event.time, caused_by(event.envelope),
                        request_id=data.request_id)


async def remember_created_job(deps: ComplaintsDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    data: JobCreated = event.data
    await remember_job(conn, data.job_id, data.request_id, data.dealer_id, deps.db.is_sqlite)
    await link_awaiting(ComplaintsUnitOfWork(conn, deps), event.time, caused_by(event.envelope), job_id=data.job_id)


async def open_from_low_revisit(deps: ComplaintsDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    data: RevisitDone = event.data
    if data.satisfaction > deps.low_satisfaction:
        return
    uow = ComplaintsUnitOfWork(conn, deps)
    if await uow.exists(revisit_complaint_id(data.job_id)):
        return
    # job.created shares the revisit's partition (both keyed by job), so the job is normally known by now.
    job = await known_job(conn, data.job_id)
    request = None if job is not None else await known_request(conn, data.request_id)
    dealer_id = job.dealer_id if job is not None else (request.dealer_id if request is not None else None)
    complaint = Complaint.open_from_revisit(
        job_id=data.job_id, request_id=data.request_id, dealer_id=dealer_id, satisfaction=data.satisfaction,
        channel=str(data.channel), comment=data.comment, at=event.time, sla=deps.sla,
    )
    await uow.save(complaint, caused_by(event.envelope))


REACTIONS: dict[str, Reaction] = {
    ServiceRequestReceived.event_type: remember_received_request,
    JobCreated.event_type: remember_created_job,
    RevisitDone.event_type: open_from_low_revisit,
}


def handler_table(deps: ComplaintsDeps) -> dict[str, Handler]:
    return {event_type: partial(reaction, deps) for event_type, reaction in REACTIONS.items()}


__all__ = ["CONSUMES", "REACTIONS", "handler_table"]
