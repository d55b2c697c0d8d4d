"""How warranty follows intake and dispatch: event type → handler, the one table the consumer runs.

- `service_request.received`: remember which unit the request is about, and judge its coverage on its
  received date (`warranty.checked`, once per request, stamped with the request's time and chained to it).
- `job.created` / `job.assigned` / `job.completed`: remember the job's request, dealer, technician, his
  center and completions (claims, swaps and part requests are checked against them); a fixed completion becomes the unit's repair
  record, which the two-repair rule counts.
- every request and job step also lands on the unit's timeline.

Dispatch names only the request, and the two topics may arrive in either order: whatever needs both (a
repair record) is settled by whichever of them comes second."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.warranty import timeline
from services.warranty.application import WarrantyRules, find, judge_received_request, record_repairs
from services.warranty.domain import Unit
from services.warranty.parts_application import release_parts_of_completed_job
from services.warranty.read_model import job_facts, known_jobs, known_requests, request_facts
from shared.contracts.base import REGISTRY, EventData
from shared.contracts.dispatch import JobAssigned, JobCompleted, JobCreated
from shared.contracts.intake import ServiceRequestReceived
from shared.contracts.topics import DISPATCH, INTAKE
from shared.events import IncomingEvent
from shared.eventstore.upsert import upsert
from shared.kernel import UnitOfWork

CONSUMES = [INTAKE, DISPATCH]

# Steps that only go on the unit's timeline. A type the contract registry does not know is left out.
TIMELINE_ONLY = (
    "service_request.triaged",
    "service_request.escalated",
    "service_request.cancelled",
    "service_request.resolved",
    "service_request.closed",
    "service_request.quote_expiry_withdrawn",  # a close by the quote's expiry that a late acceptance undid
    "job.accepted",
    "job.arrived",
    "job.cancelled",
    "revisit.done",
)


async def request_received(event: IncomingEvent[ServiceRequestReceived], uow: UnitOfWork, rules: WarrantyRules) -> None:
    data = event.data
    serial = data.product.serial
    await upsert(
        uow.conn,
        known_requests,
        {
            "request_id": data.request_id,
            "serial": serial,
            "dealer_id": data.dealer_id,
            "product_line": data.product.product_line,
            "purchase_date": data.purchase_date,
            "received_at": event.time,
        },
        key="request_id",
    )
    await timeline.add(uow.conn, [timeline.incoming_row(event, dealer_id=data.dealer_id)])
    await judge_received_request(uow, rules, await request_facts(uow.conn, data.request_id), event.time)
    await _settle_repairs(uow, serial)


async def job_created(event: IncomingEvent[JobCreated], uow: UnitOfWork) -> None:
    data = event.data
    await upsert(
        uow.conn,
        known_jobs,
        {"job_id": data.job_id, "request_id": data.request_id, "dealer_id": data.dealer_id, "created_at": event.time},
        key="job_id",
        update=["dealer_id", "created_at"],
    )
    await timeline.add(uow.conn, [timeline.incoming_row(event)])


async def job_assigned(event: IncomingEvent[JobAssigned], uow: UnitOfWork) -> None:
    data = event.data
    await upsert(
        uow.conn,
        known_jobs,
        {
            "job_id": data.job_id,
            "request_id": data.request_id,
            "technician_id": data.technician_id,
            "center_id": data.center_id,
        },
        key="job_id",
        update=["technician_id", "center_id"],
    )
    await on_timeline(event, uow)


async def job_completed(event: IncomingEvent[JobCompleted], uow: UnitOfWork) -> None:
    data = event.data
    conn = uow.conn
    job = await job_facts(conn, data.job_id)
    if job is None:
        await upsert(conn, known_jobs, {"job_id": data.job_id, "request_id": data.request_id}, key="job_id")
        job = await job_facts(conn, data.job_id)
    changes = {}
    # Completions may be synced late from offline devices: keep the latest one and the first fixed one.
    if job.last_completed_at is None or event.time > job.last_completed_at:
        changes["last_completed_at"] = event.time
    if data.fixed and (job.first_fixed_at is None or event.time < job.first_fixed_at):
        changes.update(first_fixed_at=event.time, fixed_by=data.technician_id)
    if changes:
        await conn.execute(known_jobs.update().where(known_jobs.c.job_id == data.job_id).values(**changes))
    await on_timeline(event, uow)
    request = await request_facts(conn, data.request_id)
    if data.fixed and request is not None:
        await _settle_repairs(uow, request.serial)
    if data.fixed:
        await release_parts_of_completed_job(uow, data.job_id, event.time)


async def _settle_repairs(uow: UnitOfWork, serial: str) -> None:
    """A unit warranty tracks (sold or swapped) notes the fixed completions of its jobs it has not noted."""
    unit = await find(uow, Unit, serial)
    if unit is not None:
        await record_repairs(uow, unit)


async def on_timeline(event: IncomingEvent[Any], uow: UnitOfWork) -> None:
    """A step of a request or job, on the unit's timeline under the dealer it belongs to."""
    data = event.data
    owner = None
    if getattr(data, "job_id", None):
        owner = await job_facts(uow.conn, data.job_id)
    elif getattr(data, "request_id", None):
        owner = await request_facts(uow.conn, data.request_id)
    await timeline.add(uow.conn, [timeline.incoming_row(event, dealer_id=owner.dealer_id if owner else None)])


def _timeline_only(event_class: type[EventData]) -> Callable[..., Awaitable[None]]:
    """`on_timeline`, annotated for one contract class (the start-up check holds each reaction to its key)."""

    async def put_on_timeline(event: IncomingEvent[Any], uow: UnitOfWork) -> None:
        await on_timeline(event, uow)

    put_on_timeline.__annotations__ = {
        "event": IncomingEvent[event_class],
        "uow": UnitOfWork,  # type: ignore[valid-type]
        "return": None,
    }
    return put_on_timeline


def _latest(event_type: str) -> type[EventData] | None:
    versions = [model for model in REGISTRY.all() if model.event_type == event_type]
    return versions[-1] if versions else None


REACTIONS: dict[type[EventData], Callable[..., Awaitable[None]]] = {
    ServiceRequestReceived: request_received,
    JobCreated: job_created,
    JobAssigned: job_assigned,
    JobCompleted: job_completed,
    **{model: _timeline_only(model) for model in map(_latest, TIMELINE_ONLY) if model is not None},
}


__all__ = ["CONSUMES", "REACTIONS"]
