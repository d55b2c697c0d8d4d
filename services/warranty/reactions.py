"""How warranty follows intake and dispatch: event type → handler, the one table the consumer runs.

- `service_request.received`: remember which unit the request is about, and judge its coverage on its
  received date (`warranty.checked`, once per request, stamped with the request's time and chained to it).
- `job.created` / `job.assigned` / `job.completed`: remember the job's request, dealer, technician and
  completions (claims and swaps are checked against them); a fixed completion becomes the unit's repair
  record, which the two-repair rule counts.
- every request and job step also lands on the unit's timeline.

Dispatch names only the request, and the two topics may arrive in either order: whatever needs both (a
repair record) is settled by whichever of them comes second."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from services.warranty import timeline
from services.warranty.application import (
    WarrantyDeps,
    WarrantyUnitOfWork,
    judge_received_request,
    record_repairs,
)
from services.warranty.domain import Unit
from services.warranty.read_model import job_facts, known_jobs, known_requests, request_facts, upsert
from shared.contracts.base import REGISTRY
from shared.contracts.dispatch import JobAssigned, JobCompleted, JobCreated
from shared.contracts.intake import ServiceRequestReceived
from shared.contracts.topics import DISPATCH, INTAKE
from shared.events import IncomingEvent
from shared.eventstore.store import Metadata, caused_by
from shared.messaging.consumer import Handler

CONSUMES = [INTAKE, DISPATCH]

# Steps that only go on the unit's timeline. A type the contract registry does not know is left out.
TIMELINE_ONLY = (
    "service_request.triaged", "service_request.escalated", "service_request.cancelled",
    "service_request.resolved", "service_request.closed",
    "job.accepted", "job.arrived", "job.cancelled", "revisit.done",
)

Reaction = Callable[[WarrantyDeps, IncomingEvent, AsyncConnection], Awaitable[None]]


async def request_received(deps: WarrantyDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    data: ServiceRequestReceived = event.data
    serial = data.product.serial
    await upsert(conn, known_requests, {
        "request_id": data.request_id, "serial": serial, "dealer_id": data.dealer_id,
        "product_line": data.product.product_line, "purchase_date": data.purchase_date, "received_at": event.time,
    }, key="request_id", update=[], is_sqlite=deps.db.is_sqlite)
    await timeline.add(conn, [timeline.incoming_row(event, dealer_id=data.dealer_id)], deps.db.is_sqlite)
    uow = WarrantyUnitOfWork(conn, deps)
    meta = caused_by(event.envelope)
    await judge_received_request(uow, await request_facts(conn, data.request_id), event.time, meta, data.dealer_id)
    await _settle_repairs(uow, serial, meta)


async def job_created(deps: WarrantyDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    data: JobCreated = event.data
    await upsert(conn, known_jobs, {"job_id": data.job_id, "request_id": data.request_id, "dealer_id": data.dealer_id,
                                    "created_at": event.time},
                 key="job_id", update=["dealer_id", "created_at"], is_sqlite=deps.db.is_sqlite)
    await timeline.add(conn, [timeline.incoming_row(event)], deps.db.is_sqlite)


async def job_assigned(deps: WarrantyDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    data: JobAssigned = event.data
    await upsert(conn, known_jobs, {"job_id": data.job_id, "request_id": data.request_id,
                                    "technician_id": data.technician_id},
                 key="job_id", update=["technician_id"], is_sqlite=deps.db.is_sqlite)
    await _on_timeline(deps, event, conn)


async def job_completed(deps: WarrantyDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    data: JobCompleted = event.data
    job = await job_facts(conn, data.job_id)
    if job is None:
        await upsert(conn, known_jobs, {"job_id": data.job_id, "request_id": data.request_id},
                     key="job_id", update=[], is_sqlite=deps.db.is_sqlite)
        job = await job_facts(conn, data.job_id)
    changes = {}
    # Completions may be synced late from offline devices: keep the latest one and the first fixed one.
    if job.last_completed_at is None or event.time > job.last_completed_at:
        changes["last_completed_at"] = event.time
    if data.fixed and (job.first_fixed_at is None or event.time < job.first_fixed_at):
        changes.update(first_fixed_at=event.time, fixed_by=data.technician_id)
    if changes:
        await conn.execute(known_jobs.update().where(known_jobs.c.job_id == data.job_id).values(**changes))
    await _on_timeline(deps, event, conn)
    request = await request_facts(conn, data.request_id)
    if data.fixed and request is not None:
        await _settle_repairs(WarrantyUnitOfWork(conn, deps), request.serial, caused_by(event.envelope))


async def _settle_repairs(uow: WarrantyUnitOfWork, serial: str, meta: Metadata) -> None:
    """A unit warranty tracks (sold or swapped) notes the fixed completions of its jobs it has not noted."""
    unit = await uow.find(Unit, serial)
    if unit is not None:
        await record_repairs(uow, unit)
        await uow.save(unit, meta)


async def _on_timeline(deps: WarrantyDeps, event: IncomingEvent, conn: AsyncConnection) -> None:
    """A step of a request or job, on the unit's timeline under the dealer it belongs to."""
    data = event.data
    owner = None
    if getattr(data, "job_id", None):
        owner = await job_facts(conn, data.job_id)
    elif getattr(data, "request_id", None):
        owner = await request_facts(conn, data.request_id)
    await timeline.add(conn, [timeline.incoming_row(event, dealer_id=owner.dealer_id if owner else None)],
                       deps.db.is_sqlite)


REACTIONS: dict[str, Reaction] = {
    ServiceRequestReceived.event_type: request_received,
    JobCreated.event_type: job_created,
    JobAssigned.event_type: job_assigned,
    JobCompleted.event_type: job_completed,
    **{event_type: _on_timeline for event_type in TIMELINE_ONLY if REGISTRY.knows_type(event_type)},
}


def handler_table(deps: WarrantyDeps) -> dict[str, Handler]:
    return {event_type: partial(reaction, deps) for event_type, reaction in REACTIONS.items()}


__all__ = ["CONSUMES", "REACTIONS", "handler_table"]
