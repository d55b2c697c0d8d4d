"""How intake follows the other services: event type → handler, the one table the consumer runs.

Each reaction loads the request, lets the aggregate take note (a fact already reflected changes nothing),
and saves in the consumer's transaction, stamped with the cause's time and chained to it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.application import IntakeDeps, IntakeUnitOfWork
from services.intake.domain import ServiceRequest
from shared.contracts.dispatch import JobArrived, JobCompleted, JobCreated, RevisitDone
from shared.contracts.topics import DISPATCH, WARRANTY
from shared.contracts.warranty import WarrantyChecked
from shared.domain import NotFound
from shared.events import IncomingEvent
from shared.eventstore.store import caused_by
from shared.messaging.consumer import Handler, PermanentFailure

CONSUMES = [WARRANTY, DISPATCH]

Note = Callable[[ServiceRequest, IncomingEvent, datetime], None]


def _coverage(request: ServiceRequest, event: IncomingEvent, at: datetime) -> None:
    data: WarrantyChecked = event.data
    request.note_coverage(data.covered, data.expires_on, data.reason, at)


def _job_created(request: ServiceRequest, event: IncomingEvent, at: datetime) -> None:
    request.note_job_created(event.data.job_id, at)


def _arrived(request: ServiceRequest, event: IncomingEvent, at: datetime) -> None:
    request.note_arrival(event.data.job_id, at)


def _completed(request: ServiceRequest, event: IncomingEvent, at: datetime) -> None:
    data: JobCompleted = event.data
    request.note_completion(data.job_id, data.fixed, at)


def _revisit(request: ServiceRequest, event: IncomingEvent, at: datetime) -> None:
    request.note_revisit(at)


REACTIONS: dict[str, Note] = {
    WarrantyChecked.event_type: _coverage,
    JobCreated.event_type: _job_created,
    JobArrived.event_type: _arrived,
    JobCompleted.event_type: _completed,
    RevisitDone.event_type: _revisit,
}


async def react(note: Note, deps: IntakeDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    uow = IntakeUnitOfWork(conn, deps)
    try:
        request = await uow.load(event.data.request_id)
    except NotFound as exc:
        raise PermanentFailure(str(exc)) from exc
    note(request, event, event.time)
    await uow.save(request, caused_by(event.envelope))


def handler_table(deps: IntakeDeps) -> dict[str, Handler]:
    return {event_type: partial(react, note, deps) for event_type, note in REACTIONS.items()}


__all__ = ["CONSUMES", "REACTIONS", "handler_table"]
