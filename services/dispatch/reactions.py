"""How dispatch follows intake, and what its SLA timers do: a reaction per contract event class and the
deadline reaction, each run by the kernel in a unit of work (the consumer's or the scheduler's transaction).

Reactions are stamped with their cause's time and chained to it; each is idempotent by construction (a job's
id derives from its request's, and a fact already reflected changes nothing)."""

from __future__ import annotations

import logging
from datetime import datetime

from services.dispatch.assignment import choose_technician
from services.dispatch.chunk_reads import kept_reads
from services.dispatch.domain import Assignee, Job, job_id_for
from services.dispatch.queries import job_context, mark_request_cancelled, remember_request
from services.dispatch.read_model import append_new_job_later
from services.dispatch.sla import SlaPolicy
from shared.contracts.dispatch import SlaKind
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.intake import (
    ServiceRequestCancelled,
    ServiceRequestClearedForDispatch,
    ServiceRequestReceived,
    ServiceRequestTriaged,
)
from shared.contracts.topics import INTAKE
from shared.events import IncomingEvent
from shared.kernel import UnitOfWork
from shared.messaging.consumer import PermanentFailure
from shared.scheduling import Deadline

log = logging.getLogger(__name__)

CONSUMES = [INTAKE]


async def request_received(event: IncomingEvent[ServiceRequestReceived], uow: UnitOfWork) -> None:
    """Remember where and what the request is about: `service_request.triaged` does not say."""
    await remember_request(uow.conn, event.data, event.time)


async def request_triaged(event: IncomingEvent[ServiceRequestTriaged], uow: UnitOfWork, sla: SlaPolicy) -> None:
    """A job for every request triaged onsite, carry-in or mail-in, auto-assigned when someone qualifies; unless
    intake holds it back (`dispatch_held`: warranty's verdict or the customer's acceptance of a quote first),
    in which case `service_request.cleared_for_dispatch` brings the job."""
    data = event.data
    if data.mode == ServiceMode.phone or data.dispatch_held:
        return
    await _create_job(uow, sla, data.request_id, data.mode, data.priority, event.time)


async def request_cleared(
    event: IncomingEvent[ServiceRequestClearedForDispatch], uow: UnitOfWork, sla: SlaPolicy
) -> None:
    """A held field request may be served now: the job, its arrive SLA counted from when intake says (the
    customer's acceptance of a quote for paid service; the receipt when warranty's verdict came late)."""
    data = event.data
    if data.mode == ServiceMode.phone:
        return
    await _create_job(uow, sla, data.request_id, data.mode, data.priority, event.time, data.arrive_sla_from)


async def _create_job(
    uow: UnitOfWork,
    sla: SlaPolicy,
    request_id: str,
    mode: ServiceMode,
    priority: Priority,
    at: datetime,
    arrive_sla_from: datetime | None = None,
) -> None:
    # The request, whether its job exists (the read model's row commits with the job's first event) and the
    # candidates, in one trip; a job appended meanwhile by another writer is the append's ConcurrencyError.
    context = await job_context(uow.conn, request_id)
    request = context.request
    if request is None:
        # Same topic and key as `received`, so it cannot be merely late: it was never published.
        raise PermanentFailure(
            f"service request {request_id} was triaged, but its service_request.received never reached dispatch"
        )
    if request.cancelled or context.has_job:
        return
    facts = request.facts
    chosen = choose_technician(context.candidates, facts.dealer_id)
    assignee = (
        None
        if chosen is None
        else Assignee(chosen.technician_id, chosen.center_id, active=True, skills=frozenset({facts.product_line}))
    )
    job = Job.create(facts, mode, priority, sla, at, assignee, arrive_sla_from)
    reads = kept_reads()
    if reads is not None and reads.later is not None:
        # A consumer chunk on SQLite: the job's events and rows ride with the chunk's next trip to the writer.
        append_new_job_later(uow, reads, reads.later, job)
    else:
        uow.add(job)


async def request_cancelled(event: IncomingEvent[ServiceRequestCancelled], uow: UnitOfWork) -> None:
    """The customer withdrew: an open job is cancelled and its timers stop."""
    data = event.data
    await mark_request_cancelled(uow.conn, data.request_id)
    job = await uow.find(Job, job_id_for(data.request_id))
    if job is None:
        return  # cancelled before triage, or triaged by phone: there is no job
    job.note_request_cancelled(data.reason, event.time)


REACTIONS = {
    ServiceRequestReceived: request_received,
    ServiceRequestTriaged: request_triaged,
    ServiceRequestClearedForDispatch: request_cleared,
    ServiceRequestCancelled: request_cancelled,
}


async def sla_deadline_passed(deadline: Deadline, uow: UnitOfWork) -> None:
    """What a due SLA deadline does: the job announces its breach, stamped with the deadline (once: the
    scheduler's `fired` mark commits with the event, and the job ignores a kind it already announced)."""
    job = await uow.find(Job, deadline.stream_id)
    if job is None:
        log.warning("deadline %s names a job that does not exist; dropped", deadline.name)
        return
    job.note_deadline_passed(SlaKind(deadline.kind), uow.clock.now())


__all__ = ["CONSUMES", "REACTIONS", "sla_deadline_passed"]
