"""How dispatch follows intake, and what its SLA timers do: the event type → handler table the consumer runs,
and the handler the deadline scheduler calls when a deadline is due.

Reactions are stamped with their cause's time and chained to it; each is idempotent by construction (a job's
id derives from its request's, and a fact already reflected changes nothing)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.application import DispatchDeps, DispatchUnitOfWork
from services.dispatch.assignment import choose_technician
from services.dispatch.domain import Assignee, Job, job_id_for
from services.dispatch.queries import candidates, mark_request_cancelled, known_request, remember_request
from shared.contracts.dispatch import SlaKind
from shared.contracts.enums import ServiceMode
from shared.contracts.intake import ServiceRequestCancelled, ServiceRequestReceived, ServiceRequestTriaged
from shared.contracts.topics import INTAKE
from shared.domain import NotFound
from shared.events import IncomingEvent
from shared.eventstore.store import caused_by
from shared.messaging.consumer import Handler, PermanentFailure
from shared.scheduling import Deadline

log = logging.getLogger(__name__)

CONSUMES = [INTAKE]

Reaction = Callable[[DispatchDeps, IncomingEvent, AsyncConnection], Awaitable[None]]


async def request_received(deps: DispatchDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    """Remember where and what the request is about: `service_request.triaged` does not say."""
    await remember_request(conn, event.data, event.time)


async def request_triaged(deps: DispatchDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    """A job for every request triaged onsite, carry-in or mail-in, auto-assigned when someone qualifies."""
    data: ServiceRequestTriaged = event.data
    if data.mode == ServiceMode.phone:
        return
    request = await known_request(conn, data.request_id)
    if request is None:
        # Same topic and key as `received`, so it cannot be merely late: it was never published.
        raise PermanentFailure(f"service request {data.request_id} was triaged, but its service_request.received "
                               "never reached dispatch")
    uow = DispatchUnitOfWork(conn, deps)
    if request.cancelled or await uow.jobs.exists(job_id_for(data.request_id)):
        return
    facts = request.facts
    chosen = choose_technician(await candidates(conn, facts.region, facts.product_line), facts.dealer_id)
    assignee = None if chosen is None else Assignee(chosen.technician_id, chosen.center_id, active=True,
                                                    skills=frozenset({facts.product_line}))
    job = Job.create(facts, data.mode, data.priority, deps.sla, event.time, assignee)
    await uow.save_job(job, caused_by(event.envelope))


async def request_cancelled(deps: DispatchDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    """The customer withdrew: an open job is cancelled and its timers stop."""
    data: ServiceRequestCancelled = event.data
    await mark_request_cancelled(conn, data.request_id)
    uow = DispatchUnitOfWork(conn, deps)
    try:
        job = await uow.job(job_id_for(data.request_id))
    except NotFound:
        return  # cancelled before triage, or triaged by phone: there is no job
    job.note_request_cancelled(data.reason, event.time)
    await uow.save_job(job, caused_by(event.envelope))


REACTIONS: dict[str, Reaction] = {
    ServiceRequestReceived.event_type: request_received,
    ServiceRequestTriaged.event_type: request_triaged,
    ServiceRequestCancelled.event_type: request_cancelled,
}


def handler_table(deps: DispatchDeps) -> dict[str, Handler]:
    return {event_type: partial(reaction, deps) for event_type, reaction in REACTIONS.items()}


def deadline_handler(deps: DispatchDeps) -> Callable[[Deadline, AsyncConnection], Awaitable[None]]:
    """What a due SLA deadline does: the job announces its breach, stamped with the deadline (once: the
    scheduler's `fired` mark commits with the event, and the job ignores a kind it already announced)."""

    async def sla_deadline_passed(deadline: Deadline, conn: AsyncConnection) -> None:
        uow = DispatchUnitOfWork(conn, deps)
        try:
            job = await uow.job(deadline.stream_id)
        except NotFound:
            log.warning("deadline %s names a job that does not exist; dropped", deadline.name)
            return
        job.note_deadline_passed(SlaKind(deadline.kind), deps.clock.now())
        await uow.save_job(job, await uow.timer_metadata(job.id, deadline.name))

    return sla_deadline_passed


__all__ = ["CONSUMES", "REACTIONS", "deadline_handler", "handler_table"]
