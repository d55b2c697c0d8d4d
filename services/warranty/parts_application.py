"""The parts ledger's use cases: the catalogue, stock locations, receipts and transfers, part requests (reserve,
backorder, ship, receive), the issue of a swap's new part from the technician's van, and defective-part
returns. Each runs in one unit of work: every stream it touches (a location, a part request, a unit) is
appended in one transaction, or nothing is; a location's stream version guards its stock against a concurrent
command (the loser is a 409 and writes nothing)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from services.warranty.commands import (
    ReceivePartRequest,
    ReceiveStock,
    RegisterPart,
    RegisterStockLocation,
    RequestPart,
    ReturnPart,
    ShipPartRequest,
    TransferStock,
)
from services.warranty.coverage import normalize_category
from services.warranty.domain import Unit
from services.warranty.parts_domain import JobContext, Part, PartRequest
from services.warranty.parts_read_model import (
    location_view,
    part_request_view,
    part_requests,
    part_return_view,
    part_view,
    stock_levels,
    stock_locations,
    van_of,
)
from services.warranty.read_model import job_facts, known_jobs, request_facts, swaps
from services.warranty.rules import WarrantyRules
from services.warranty.stock import Candidate, StockLocation, choose_location
from shared.auth import Actor
from shared.clock import Clock
from shared.contracts.warranty import LocationKind
from shared.domain import Conflict, NotFound, RuleViolation
from shared.eventstore.store import publish_business_ids
from shared.kernel import UnitOfWork

for _kind in (Part, StockLocation, PartRequest):  # their subjects on Kafka are the part number and the ids
    publish_business_ids("warranty", _kind.stream_type, _kind.namespace)


@dataclass(frozen=True)
class Registered:
    """A catalogue answer: the part, and whether this registration entered it (201) or re-priced it (200)."""

    view: dict[str, Any]
    created: bool


async def catalogued(uow: UnitOfWork, part_number: str) -> Part:
    part = await uow.find(Part, Part.stream_id(part_number))
    if part is None:
        raise NotFound(f"part {part_number} is not in the catalogue", field="part_number")
    return part


async def location_named(uow: UnitOfWork, location_id: str, field: str = "location_id") -> StockLocation:
    location = await uow.find(StockLocation, StockLocation.stream_id(location_id))
    if location is None:
        raise NotFound(f"stock location {location_id} does not exist", field=field)
    return location


def level_view(location: StockLocation, part_number: str) -> dict[str, Any]:
    level = location.level(part_number)
    return {
        "location_id": location.location_id,
        "part_number": part_number,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "available": level.available,
    }


# --- catalogue and locations ----------------------------------------------------------------------------


async def register_part(
    cmd: RegisterPart, actor: Actor, uow: UnitOfWork, clock: Clock, rules: WarrantyRules
) -> Registered:
    """Enter a part, or re-price it (the last registration holds; the same one again records nothing). The
    currency defaults to warranty's."""
    part = await uow.find(Part, Part.stream_id(cmd.part_number))
    created = part is None
    part = part or uow.add(Part.new(cmd.part_number))
    currency = (cmd.currency or rules.currency).upper()
    part.register(cmd.name, normalize_category(cmd.category), cmd.unit_price, currency, actor.subject, clock.now())
    return Registered(part_view(part), created)


async def register_location(cmd: RegisterStockLocation, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict:
    if await uow.find(StockLocation, StockLocation.stream_id(cmd.location_id)) is not None:
        raise Conflict(f"stock location {cmd.location_id} already exists", field="id", existing_id=cmd.location_id)
    if cmd.kind == LocationKind.van:
        van = await van_of(uow.conn, cmd.technician_id)
        if van is not None:
            raise Conflict(
                f"technician {cmd.technician_id} has a van already ({van.location_id})",
                field="technician_id",
                existing_id=van.location_id,
            )
    location = uow.add(StockLocation.new(cmd.location_id))
    location.register(cmd.kind, cmd.center_id, cmd.technician_id, actor.subject, clock.now())
    return location_view(location)


# --- receipts and transfers -------------------------------------------------------------------------------


def moved_at(uow: UnitOfWork, occurred_at: datetime | None, clock: Clock) -> datetime:
    """A location's movement time: within the contract's bounds, but not held to the location's previous event
    (a store is a ledger that many jobs' steps, each synced in its own time, write to, as a swap's issue from
    the van already does); each part request it touches keeps its own order (`PartRequest._after_previous`)."""
    return uow.time_rules.resolve(occurred_at, clock.now(), None)


async def receive_stock(cmd: ReceiveStock, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict:
    """Parts in from a supplier; then the oldest backordered requests they can cover are reserved."""
    await catalogued(uow, cmd.part_number)
    location = await location_named(uow, cmd.location_id)
    at = moved_at(uow, cmd.occurred_at, clock)
    receipt_id = str(uuid.uuid4())
    location.receive(receipt_id, cmd.part_number, cmd.quantity, cmd.reference, actor.subject, at)
    filled = await fill_backorders(uow, location, cmd.part_number, at)
    return {"id": receipt_id, **level_view(location, cmd.part_number), "reserved_for": filled}


async def transfer_stock(cmd: TransferStock, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict:
    if cmd.from_location_id == cmd.to_location_id:
        raise RuleViolation("a transfer goes to another location", field="to_location_id")
    await catalogued(uow, cmd.part_number)
    source = await location_named(uow, cmd.from_location_id, "from_location_id")
    target = await location_named(uow, cmd.to_location_id, "to_location_id")
    at = moved_at(uow, cmd.occurred_at, clock)
    transfer_id = str(uuid.uuid4())
    source.transfer_out(transfer_id, target.location_id, cmd.part_number, cmd.quantity, actor.subject, at)
    target.transfer_in(transfer_id, source.location_id, cmd.part_number, cmd.quantity, actor.subject, at)
    filled = await fill_backorders(uow, target, cmd.part_number, at)
    return {
        "id": transfer_id,
        "part_number": cmd.part_number,
        "quantity": cmd.quantity,
        "from": level_view(source, cmd.part_number),
        "to": level_view(target, cmd.part_number),
        "reserved_for": filled,
    }


def may_draw_from(location: StockLocation, technician_id: str | None, center_id: str | None) -> bool:
    """A job draws from its technician's van, his center's store, and any warehouse."""
    if location.kind == LocationKind.warehouse:
        return True
    if location.kind == LocationKind.center_store:
        return center_id is not None and location.center_id == center_id
    return technician_id is not None and location.technician_id == technician_id


async def fill_backorders(uow: UnitOfWork, location: StockLocation, part_number: str, at: datetime) -> list[str]:
    """Reserve, oldest first, the backordered requests for the part that this location may serve and that fit
    in what it has available (a request that does not fit waits for more; those behind it are not held up).
    Requests of jobs completed fixed meanwhile are left alone. The ids of the requests reserved."""
    query = (
        select(part_requests.c.part_request_id, known_jobs.c.technician_id, known_jobs.c.center_id)
        .join(known_jobs, known_jobs.c.job_id == part_requests.c.job_id)
        .where(
            part_requests.c.part_number == part_number,
            part_requests.c.status == "backordered",
            known_jobs.c.first_fixed_at.is_(None),
        )
        .order_by(part_requests.c.position)
    )
    filled = []
    for row in (await uow.conn.execute(query)).all():
        if not may_draw_from(location, row.technician_id, row.center_id):
            continue
        request = await uow.get(PartRequest, PartRequest.stream_id(row.part_request_id))
        if request.quantity > location.level(part_number).available:
            continue
        request.fill(location.location_id, location.kind, row.technician_id, at)
        location.reserve(request.part_request_id, request.job_id, part_number, request.quantity, at)
        filled.append(request.part_request_id)
    return filled


# --- part requests ----------------------------------------------------------------------------------------


async def visible_job(uow: UnitOfWork, job_id: str, actor: Actor) -> Any:
    job = await job_facts(uow.conn, job_id)
    if job is None or not actor.sees(job.dealer_id, job.technician_id):
        raise NotFound(f"job {job_id} does not exist", field="job_id")
    return job


async def candidates_for(uow: UnitOfWork, job: Any, part_number: str) -> list[Candidate]:
    """The locations the job may draw from, with what the read table says they have available."""
    eligible = [stock_locations.c.kind == LocationKind.warehouse.value]
    if job.technician_id is not None:
        eligible.append(
            and_(stock_locations.c.kind == LocationKind.van.value, stock_locations.c.technician_id == job.technician_id)
        )
    if job.center_id is not None:
        eligible.append(
            and_(
                stock_locations.c.kind == LocationKind.center_store.value, stock_locations.c.center_id == job.center_id
            )
        )
    query = (
        select(stock_locations.c.location_id, stock_locations.c.kind, stock_levels.c.on_hand, stock_levels.c.reserved)
        .select_from(
            stock_locations.outerjoin(
                stock_levels,
                and_(
                    stock_levels.c.location_id == stock_locations.c.location_id,
                    stock_levels.c.part_number == part_number,
                ),
            )
        )
        .where(or_(*eligible))
    )
    rows = (await uow.conn.execute(query)).all()
    return [Candidate(r.location_id, LocationKind(r.kind), (r.on_hand or 0) - (r.reserved or 0)) for r in rows]


async def request_part(cmd: RequestPart, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict:
    """Reserve from the technician's van, else his center, else a warehouse; or backorder."""
    job = await visible_job(uow, cmd.job_id, actor)
    if job.first_fixed_at is not None:
        raise Conflict(f"job {cmd.job_id} was completed; it needs no more parts", field="job_id")
    await catalogued(uow, cmd.part_number)
    if cmd.quantity <= 0:
        raise RuleViolation("quantity must be at least 1", field="quantity")
    candidates = await candidates_for(uow, job, cmd.part_number)
    chosen = choose_location(candidates, cmd.quantity)
    request = uow.add(PartRequest.new(str(uuid.uuid4())))
    at = uow.time_rules.resolve(cmd.occurred_at, clock.now(), job.created_at)  # not before the job
    if chosen is not None:
        location = await location_named(uow, chosen.location_id)
        location.reserve(request.part_request_id, job.job_id, cmd.part_number, cmd.quantity, at)
    known = await request_facts(uow.conn, job.request_id)
    context = JobContext(
        job.job_id, job.request_id, known.serial if known else None, job.dealer_id, job.technician_id, job.center_id
    )
    request.open(context, cmd.part_number, cmd.quantity, actor.subject, at, chosen, backorder_reason(candidates, cmd))
    return part_request_view(request)


def backorder_reason(candidates: list[Candidate], cmd: RequestPart) -> str:
    what = ", ".join(f"{c.kind.value} {c.location_id}: {c.available}" for c in candidates) or "none is registered"
    return (
        f"no location the job may draw from has {cmd.quantity} of part {cmd.part_number} available "
        f"(the technician's van, his center, the warehouses; {what})"
    )


async def visible_request(uow: UnitOfWork, part_request_id: str, actor: Actor) -> tuple[PartRequest, Any]:
    """The part request and its job as warranty knows it now, or a 404 outside the actor's scope."""
    request = await uow.find(PartRequest, PartRequest.stream_id(part_request_id))
    job = await job_facts(uow.conn, request.job_id) if request is not None else None
    technician = job.technician_id if job is not None else (request.technician_id if request else None)
    if request is None or not actor.sees(request.dealer_id, technician):
        raise NotFound(f"part request {part_request_id} does not exist")
    return request, job


async def ship_part_request(cmd: ShipPartRequest, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict:
    """The warehouse (or center) hands the reserved parts over for the job's technician's van."""
    request, job = await visible_request(uow, cmd.part_request_id, actor)
    technician_id = job.technician_id if job is not None else request.technician_id
    van = await van_of(uow.conn, technician_id)
    if van is None:
        raise Conflict(
            f"technician {technician_id or '(none assigned)'} of job {request.job_id} has no van to ship to",
            field="technician_id",
        )
    at = uow.time_rules.resolve(cmd.occurred_at, clock.now(), request.last_occurred_at)
    request.ship(van.location_id, request.quantity, actor.subject, at)
    source = await location_named(uow, request.location_id)
    source.ship(request.part_request_id, van.location_id, request.last_occurred_at or at)
    return part_request_view(request)


async def receive_part_request(cmd: ReceivePartRequest, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict:
    """The technician takes the shipped parts into his van, where they stay reserved for the job."""
    request, _ = await visible_request(uow, cmd.part_request_id, actor)
    at = uow.time_rules.resolve(cmd.occurred_at, clock.now(), request.last_occurred_at)
    received = request.receive(cmd.quantity, actor.subject, at)
    van = await location_named(uow, request.to_location_id)
    at = request.last_occurred_at or at  # the van's movement at the time of the step it follows
    van.deliver(request.part_request_id, request.job_id, request.part_number, received, request.location_id, at)
    return part_request_view(request)


async def release_parts_of_completed_job(uow: UnitOfWork, job_id: str, at: datetime) -> list[str]:
    """The job was completed fixed: its backorders are not filled any more, and what its requests still hold
    (reserved at a location, or received into the van and not used by a swap) is free again. A request whose
    parts all went into the unit, or that is on its way to the van, stays as it is. Idempotent: a released
    request is not looked at again. The ids of the requests released."""
    query = (
        select(part_requests.c.part_request_id)
        .where(part_requests.c.job_id == job_id, part_requests.c.status.in_(("backordered", "reserved", "received")))
        .order_by(part_requests.c.position)
    )
    released = []
    for part_request_id in (await uow.conn.execute(query)).scalars():
        request = await uow.get(PartRequest, PartRequest.stream_id(part_request_id))
        where, freed = request.holding_location, 0
        if where is not None:
            freed = (await location_named(uow, where)).release(part_request_id, at)
            if freed == 0:
                continue
        request.release(freed, where, f"job {job_id} was completed fixed", at)
        released.append(part_request_id)
    return released


# --- swaps and returns ------------------------------------------------------------------------------------


async def issue_from_van(
    uow: UnitOfWork, job: Any, swap_id: str, serial: str, part_number: str, category: str, quantity: int, at
) -> str | None:
    """A swap's new part leaves the technician's van when the part is catalogued and he has a van; the van's
    id, or None when the ledger does not follow this part or technician (the swap is recorded as before)."""
    part = await uow.find(Part, Part.stream_id(part_number))
    if part is None:
        return None
    if part.category != category:
        raise RuleViolation(
            f"part {part_number} is a {part.category} part in the catalogue, not {category}", field="part_category"
        )
    van = await van_of(uow.conn, job.technician_id)
    if van is None:
        return None
    location = await location_named(uow, van.location_id)
    location.issue(swap_id, job.job_id, serial, part_number, quantity, at)
    return location.location_id


async def return_part(cmd: ReturnPart, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict:
    """The old part of a swap came back (once per swap)."""
    row = (await uow.conn.execute(select(swaps).where(swaps.c.swap_id == cmd.swap_id))).first()
    job = await job_facts(uow.conn, row.job_id) if row is not None else None
    if row is None or not actor.sees(row.dealer_id, job.technician_id if job is not None else None):
        raise NotFound(f"part swap {cmd.swap_id} does not exist", field="swap_id")
    unit = await uow.get(Unit, Unit.stream_id(row.serial))
    if cmd.occurred_at is None:
        at = max(clock.now(), unit.last_occurred_at or clock.now())
    else:  # not before the swap it returns the old part of
        at = uow.time_rules.check(cmd.occurred_at, clock.now(), unit.swapped_at.get(cmd.swap_id))
    returned = unit.return_part(str(uuid.uuid4()), cmd.swap_id, cmd.old_part_serial, cmd.condition, actor.subject, at)
    return part_return_view(returned, at)


PARTS_COMMANDS = {
    RegisterPart: register_part,
    RegisterStockLocation: register_location,
    ReceiveStock: receive_stock,
    TransferStock: transfer_stock,
    RequestPart: request_part,
    ShipPartRequest: ship_part_request,
    ReceivePartRequest: receive_part_request,
    ReturnPart: return_part,
}
