"""warranty's use cases: each command runs in one transaction that loads the aggregates it needs from their
events, lets them decide, and appends the new events (outbox included) with their read-model rows, so that a
refused command leaves nothing behind."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.warranty import timeline
from services.warranty.bulk_import import MAX_REPORTED_ERRORS
from services.warranty.claims import Claim, ClaimFacts, SwapLine, adjudicate, amounts
from services.warranty.commands import (
    ImportProducts,
    OverrideClaim,
    RecordPartSwap,
    RegisterProduct,
    RegisterStockLocation,
    RequestReturn,
    RowError,
    SetWarrantyPolicy,
    SubmitClaim,
)
from services.warranty.coverage import PolicyBook, Sale, Verdict, judge, normalize_category
from services.warranty.domain import CoverageCheck, ProductLinePolicy, Unit
from services.warranty.parts_application import PARTS_COMMANDS, issue_from_van
from services.warranty.parts_read_model import returned_swaps
from services.warranty.read_model import (
    claim_view,
    claims,
    fixed_jobs_of,
    job_facts,
    policy_view,
    registered_among,
    request_facts,
    save_unit_rows,
    swap_view,
    swaps,
    unit_streams_among,
)
from services.warranty.rules import WarrantyRules
from shared.auth import Actor
from shared.clock import Clock, rfc3339
from shared.contracts.warranty import ClaimSubmitted, CoverageBasis, PartSwapped
from shared.domain import Aggregate, Conflict, NotFound, RuleViolation
from shared.eventstore.bulk import start_streams
from shared.eventstore.store import EventStore, publish_business_ids
from shared.kernel import UnitOfWork

__all__ = ["COMMANDS", "WarrantyRules", "find", "integrity_conflict", "judge_received_request", "record_repairs"]

A = TypeVar("A", bound=Aggregate)


for _kind in (Unit, Claim, CoverageCheck):  # their subjects on Kafka stay the serial, claim id and request id
    publish_business_ids("warranty", _kind.stream_type, _kind.namespace)


async def find(uow: UnitOfWork, kind: Any, business_id: str) -> Any:
    """The aggregate of that kind and id folded from its (namespaced) stream, or None when there is none."""
    return await uow.find(kind, kind.stream_id(business_id))


async def policy_book(uow: UnitOfWork, product_line: str, rules: WarrantyRules) -> PolicyBook:
    policy = await find(uow, ProductLinePolicy, product_line)
    if policy is None:
        return PolicyBook(product_line, (), rules.default_months)
    return policy.book(product_line, rules.default_months)


async def verdict_for(
    uow: UnitOfWork,
    rules: WarrantyRules,
    serial: str,
    request: Any,
    on: date,
    category: str | None = None,
    unit: Unit | None = None,
) -> Verdict:
    """Coverage on `on`: from the registered sale when the serial is known, else from the request's purchase
    date (`request` is a known-request row, or None; `unit` the unit when the caller has loaded it)."""
    unit = unit or await find(uow, Unit, serial)
    sale = unit.sale() if unit is not None else None
    product_line = unit.product_line if sale is not None else None
    if sale is None and request is not None and request.purchase_date is not None:
        sale, product_line = Sale(serial, request.purchase_date, CoverageBasis.purchase_date), request.product_line
    if sale is None or product_line is None:
        return judge(None, None, on, category, serial)
    policy = (await policy_book(uow, product_line, rules)).for_sale(sale.sold_on)
    return judge(sale, policy, on, category, serial)


async def record_repairs(uow: UnitOfWork, unit: Unit) -> None:
    """Let the unit note every fixed completion of its jobs it has not noted yet (each stamped with its
    completion time), whichever arrived first: the job's completion, its request, or a swap."""
    for job in await fixed_jobs_of(uow.conn, unit.serial):
        unit.note_repair(job.job_id, job.request_id, job.fixed_by, job.dealer_id, job.first_fixed_at)


# --- command handlers -------------------------------------------------------------------------------------


async def register_product(cmd: RegisterProduct, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    unit = await find(uow, Unit, cmd.serial) or uow.add(Unit.new(cmd.serial))
    if unit.registered and actor.dealer_scope is not None and unit.dealer_id != actor.dealer_scope:
        # The serial is unique, so the 409 itself cannot be avoided; another dealer's sale date and the like
        # stay unsaid.
        raise Conflict(f"serial {cmd.serial} is already registered", field="serial")
    at = clock.now()
    unit.register(cmd.model, cmd.product_line, cmd.sold_on, cmd.dealer_id, at)
    return {
        "serial": unit.serial,
        "model": unit.model,
        "product_line": unit.product_line,
        "sold_on": cmd.sold_on.isoformat(),
        "dealer_id": unit.dealer_id,
        "registered_at": rfc3339(at),
    }


async def import_products(
    cmd: ImportProducts, actor: Actor, uow: UnitOfWork, clock: Clock, store: EventStore
) -> dict[str, Any]:
    """All rows or none, unless partial import was asked for; every error with its line. The new units'
    streams are started in one batch (`start_streams`) and projected together: thousands of units cost a few
    statements, not a savepoint each; units swapped before their sale go through the unit of work."""
    already = await registered_among(uow.conn, [row.serial for _, row in cmd.rows])
    errors = list(cmd.errors) + [
        RowError(line, "serial", "already registered", row.serial) for line, row in cmd.rows if row.serial in already
    ]
    valid = [(line, row) for line, row in cmd.rows if row.serial not in already]
    errors.sort(key=lambda e: e.line)
    report = {
        "rows": len(valid) + len({e.line for e in errors}),
        "rejected": len({e.line for e in errors}),
        "error_count": len(errors),
        "errors": [e.as_dict() for e in errors[:MAX_REPORTED_ERRORS]],
    }
    if (errors and not cmd.allow_partial) or not valid:
        what = "no row is valid" if not valid else f"{report['rejected']} of {report['rows']} rows are not valid"
        raise RuleViolation(f"{what}; nothing was imported", **report)
    at = clock.now()
    started = await unit_streams_among(uow.conn, [row.serial for _, row in valid])
    new_units = []
    for _, row in valid:
        unit = await find(uow, Unit, row.serial) if row.serial in started else Unit.new(row.serial)
        unit.register(row.model, row.product_line, row.sold_on, row.dealer_id, at)
        if row.serial not in started:  # a unit swapped before its sale is appended by the unit of work
            new_units.append(unit)
    stored = await start_streams(uow.conn, store, new_units, uow.metadata, actor=uow.actor)
    await save_unit_rows(uow.conn, stored)
    await timeline.add(uow.conn, timeline.own_rows(stored, timeline.Context()))
    return {"imported": len(valid), **report}


async def set_policy(cmd: SetWarrantyPolicy, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    policy = await find(uow, ProductLinePolicy, cmd.product_line) or uow.add(ProductLinePolicy.new(cmd.product_line))
    policy.set(cmd.product_line, cmd.months, cmd.part_months, cmd.excluded_categories, cmd.effective_from, clock.now())
    return policy_view(policy)


async def record_part_swap(
    cmd: RecordPartSwap, actor: Actor, uow: UnitOfWork, clock: Clock, rules: WarrantyRules
) -> dict[str, Any]:
    """Covered or billable, decided on the swap date for the part's category. A catalogued part swapped by a
    technician who has a van leaves the van's stock (the job's reservation first; 409 when the van has not
    got it); a part the catalogue does not list, or a technician without a van, is recorded as before."""
    job = await job_facts(uow.conn, cmd.job_id)
    if job is None or not actor.sees(job.dealer_id, job.technician_id):
        raise NotFound(f"job {cmd.job_id} does not exist", field="job_id")
    if job.request_id != cmd.request_id:
        raise RuleViolation(
            f"job {cmd.job_id} is for request {job.request_id}, not {cmd.request_id}", field="request_id"
        )
    request = await request_facts(uow.conn, job.request_id)
    if request is not None and request.serial != cmd.serial:
        raise RuleViolation(
            f"request {job.request_id} is about serial {request.serial}, not {cmd.serial}", field="serial"
        )
    at = uow.time_rules.resolve(cmd.occurred_at, clock.now(), job.created_at)  # not before the job
    unit = await find(uow, Unit, cmd.serial)
    if unit is None and request is None:
        raise NotFound(
            f"serial {cmd.serial} is not registered and job {cmd.job_id}'s request has not reached warranty",
            field="serial",
        )
    unit = unit or uow.add(Unit.new(cmd.serial))
    category = normalize_category(cmd.part_category)
    verdict = await verdict_for(uow, rules, cmd.serial, request, at.date(), category, unit)
    swap_id = str(uuid.uuid4())
    van = await issue_from_van(uow, job, swap_id, cmd.serial, cmd.part_number, category, cmd.quantity, at)
    swap = PartSwapped(
        swap_id=swap_id,
        job_id=cmd.job_id,
        request_id=cmd.request_id,
        serial=cmd.serial,
        part_number=cmd.part_number,
        part_category=category,
        quantity=cmd.quantity,
        old_part_serial=cmd.old_part_serial,
        new_part_serial=cmd.new_part_serial,
        covered=verdict.covered,
        covered_until=verdict.expires_on,
        reason=verdict.reason,
        unit_cost=cmd.unit_cost,
        currency=rules.currency,
        dealer_id=job.dealer_id,
        recorded_by=actor.subject,
        issued_from=van,
    )
    unit.swap_part(swap, at)
    await record_repairs(uow, unit)
    return swap_view(swap, at)


async def submit_claim(
    cmd: SubmitClaim, actor: Actor, uow: UnitOfWork, clock: Clock, rules: WarrantyRules
) -> dict[str, Any]:
    job = await job_facts(uow.conn, cmd.job_id)
    if job is None or not actor.sees(job.dealer_id, job.technician_id):
        raise NotFound(f"job {cmd.job_id} does not exist", field="job_id")
    dealer_id = actor.dealer_scope or job.dealer_id
    if dealer_id is None:
        raise RuleViolation(f"job {cmd.job_id} belongs to no dealer; there is nobody to pay", field="job_id")
    existing = (await uow.conn.execute(select(claims.c.claim_id).where(claims.c.job_id == cmd.job_id))).scalar()
    if existing is not None:
        raise Conflict(
            f"job {cmd.job_id} already has claim {existing}; one claim per job", field="job_id", existing_id=existing
        )
    if job.last_completed_at is None:
        raise Conflict(f"job {cmd.job_id} has not been completed; claim it once it is", field="job_id")
    request = await request_facts(uow.conn, job.request_id)
    coverage = None
    if request is not None:
        coverage = await verdict_for(uow, rules, request.serial, request, request.received_at.date())
    rows = (await uow.conn.execute(select(swaps).where(swaps.c.swap_id.in_(cmd.swap_ids)))).all()
    returned = await returned_swaps(uow.conn, [r.swap_id for r in rows])
    found = {
        r.swap_id: SwapLine(
            r.swap_id,
            r.job_id,
            r.covered,
            r.quantity,
            Decimal(r.unit_cost),
            json.loads(r.view)["part_category"],
            r.swap_id in returned,
        )
        for r in rows
    }
    lines = tuple(found.get(swap_id, SwapLine(swap_id, None)) for swap_id in cmd.swap_ids)
    filed_at = clock.now()
    facts = ClaimFacts(
        cmd.job_id, job.request_id, job.last_completed_at, coverage, lines, rules.return_required_categories
    )
    worth = amounts(cmd.labour_minutes, rules.labour_rate_per_hour, lines, cmd.job_id)
    submitted = ClaimSubmitted(
        claim_id=str(uuid.uuid4()),
        job_id=cmd.job_id,
        request_id=job.request_id,
        serial=request.serial if request is not None else None,
        dealer_id=dealer_id,
        labour_minutes=cmd.labour_minutes,
        swap_ids=list(cmd.swap_ids),
        labour_amount=worth.labour,
        parts_amount=worth.parts,
        total_amount=worth.total,
        currency=rules.currency,
        submitted_by=actor.subject,
    )
    claim = uow.add(Claim.submit(submitted, adjudicate(facts, filed_at, rules.claim_days), filed_at))
    return claim_view(claim)


async def override_claim(cmd: OverrideClaim, actor: Actor, uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    claim = await find(uow, Claim, cmd.claim_id)
    if claim is None or not actor.sees_dealer(claim.dealer_id):
        raise NotFound(f"claim {cmd.claim_id} does not exist")
    # Never before the claim's last decision, so its stream reads in order even if clocks disagree.
    at = max(filter(None, (clock.now(), claim.last_occurred_at)))
    claim.override(cmd.approve, actor.subject, cmd.note, at)
    return claim_view(claim)


async def request_return(cmd: RequestReturn, actor: Actor, uow: UnitOfWork, rules: WarrantyRules) -> dict[str, Any]:
    unit = await find(uow, Unit, cmd.serial)
    if unit is None or not unit.registered or not actor.sees_dealer(unit.dealer_id):
        raise NotFound(f"serial {cmd.serial} is not registered", field="serial")
    at = uow.step_time(cmd.occurred_at)
    return_id = str(uuid.uuid4())
    decision = unit.request_return(return_id, cmd.kind, cmd.reason, at, rules.return_limits, actor.subject)
    status = ("returned" if cmd.kind.value == "return" else "exchanged") if decision.accepted else "rejected"
    return {
        "id": return_id,
        "serial": unit.serial,
        "kind": cmd.kind.value,
        "status": status,
        "basis": decision.basis or None,
        "reasons": list(decision.reasons),
        "remedy": decision.remedy or None,
        "days_since_sale": decision.days_since_sale,
        "sold_on": unit.sold_on.isoformat() if unit.sold_on else None,
        "requested_at": rfc3339(at),
        "reason": cmd.reason,
    }


COMMANDS = {
    **PARTS_COMMANDS,
    RegisterProduct: register_product,
    ImportProducts: import_products,
    SetWarrantyPolicy: set_policy,
    RecordPartSwap: record_part_swap,
    SubmitClaim: submit_claim,
    OverrideClaim: override_claim,
    RequestReturn: request_return,
}


async def integrity_conflict(command: Any, actor: Actor, exc: IntegrityError) -> Exception | None:
    """A concurrent command got there first; the table's key stopped this one, and nothing was written."""
    if isinstance(command, SubmitClaim):
        return Conflict(f"job {command.job_id} already has a claim; one claim per job", field="job_id")
    if isinstance(command, RegisterStockLocation):
        return Conflict(
            f"stock location {command.location_id}, or a van of technician {command.technician_id}, was registered "
            "by a concurrent request first",
            field="technician_id" if command.technician_id else "id",
        )
    return Conflict("a concurrent change to the same record was saved first; read it again and retry")


async def judge_received_request(uow: UnitOfWork, rules: WarrantyRules, request: Any, at: datetime) -> None:
    """Record `warranty.checked` for a received request (once), judged on its received date."""
    check = await find(uow, CoverageCheck, request.request_id) or uow.add(CoverageCheck.new(request.request_id))
    if check.checked:
        return
    verdict = await verdict_for(uow, rules, request.serial, request, at.date())
    check.note_received(request.serial, verdict, at.date(), at)
