"""How intake follows the other services: a reaction per contract event class, run by the kernel in a unit of
work over the consumer's transaction, stamped with the cause's time and chained to it (`caused_by`).

Each reaction loads the request and lets the aggregate take note (a fact already reflected changes nothing)."""

from __future__ import annotations

from services.intake.domain import ServiceRequest
from services.intake.read_model import note_part_price
from shared.contracts.dispatch import JobArrived, JobCompleted, JobCreated, RevisitDone
from shared.contracts.topics import COMPLAINTS, DISPATCH, INTAKE, WARRANTY
from shared.contracts.warranty import PartRegistered, WarrantyChecked
from shared.domain import NotFound
from shared.events import IncomingEvent
from shared.kernel import UnitOfWork
from shared.messaging.consumer import PermanentFailure

# All four: the reactions need warranty and dispatch; the webhooks deliver every topic (intake's own too).
CONSUMES = [INTAKE, DISPATCH, WARRANTY, COMPLAINTS]


async def _request(uow: UnitOfWork, request_id: str) -> ServiceRequest:
    try:
        return await uow.get(ServiceRequest, request_id)
    except NotFound as exc:
        raise PermanentFailure(str(exc)) from exc


async def note_coverage(event: IncomingEvent[WarrantyChecked], uow: UnitOfWork) -> None:
    data = event.data
    (await _request(uow, data.request_id)).note_coverage(data.covered, data.expires_on, data.reason, event.time)


async def note_job_created(event: IncomingEvent[JobCreated], uow: UnitOfWork) -> None:
    (await _request(uow, event.data.request_id)).note_job_created(event.data.job_id, event.time)


async def note_arrival(event: IncomingEvent[JobArrived], uow: UnitOfWork) -> None:
    (await _request(uow, event.data.request_id)).note_arrival(event.data.job_id, event.time)


async def note_completion(event: IncomingEvent[JobCompleted], uow: UnitOfWork) -> None:
    data = event.data
    (await _request(uow, data.request_id)).note_completion(data.job_id, data.fixed, event.time)


async def note_revisit(event: IncomingEvent[RevisitDone], uow: UnitOfWork) -> None:
    (await _request(uow, event.data.request_id)).note_revisit(event.time)


async def note_part_registered(event: IncomingEvent[PartRegistered], uow: UnitOfWork) -> None:
    """Keep intake's copy of the parts catalogue, to price quotes from (the last registration wins)."""
    await note_part_price(uow.conn, event.data, event.time, event.envelope.sequence)


REACTIONS = {
    WarrantyChecked: note_coverage,
    PartRegistered: note_part_registered,
    JobCreated: note_job_created,
    JobArrived: note_arrival,
    JobCompleted: note_completion,
    RevisitDone: note_revisit,
}

__all__ = ["CONSUMES", "REACTIONS"]
