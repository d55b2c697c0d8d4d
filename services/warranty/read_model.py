"""warranty's read side: rows of its own aggregates (products, policies, swaps, claims) kept in step with their
events, and the facts it learns from other services (requests from intake, jobs from dispatch).

The tables are warranty's own `metadata`; their names keep the `warranty_` prefix they were created with (an
end-to-end test runs several services in one process, and renaming them would need a migration)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, Index, MetaData, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warranty.claims import Claim, money
from services.warranty.domain import ProductLinePolicy, Unit
from shared.clock import rfc3339
from shared.contracts.warranty import PartSwapped, ProductRegistered
from shared.events import EventEnvelope
from shared.eventstore.tables import UtcDateTime, events
from shared.eventstore.upsert import upsert

metadata = MetaData()

products = Table(
    "warranty_products",
    metadata,
    Column("serial", String(80), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("model", String(120), nullable=False),
    Column("product_line", String(80), nullable=False),
    Column("sold_on", Date, nullable=False),
    Column("dealer_id", String(80)),
    Column("registered_at", UtcDateTime, nullable=False),
)
Index("ix_warranty_products_dealer", products.c.dealer_id, products.c.position)

policies = Table(
    "warranty_policies",
    metadata,
    Column("product_line", String(80), primary_key=True),
    Column("view", Text, nullable=False),
)

swaps = Table(
    "warranty_swaps",
    metadata,
    Column("swap_id", String(36), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("job_id", String(80), nullable=False),
    Column("serial", String(80), nullable=False),
    Column("dealer_id", String(80)),
    Column("covered", Boolean, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_cost", String(24), nullable=False),
    Column("view", Text, nullable=False),
)
Index("ix_warranty_swaps_job", swaps.c.job_id)
Index("ix_warranty_swaps_serial", swaps.c.serial)

claims = Table(
    "warranty_claims",
    metadata,
    Column("claim_id", String(36), primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    # One claim per job: the key stops a second one even when two are filed at once.
    Column("job_id", String(80), nullable=False, unique=True),
    Column("dealer_id", String(80), nullable=False),
    Column("status", String(20), nullable=False),
    Column("view", Text, nullable=False),
)
Index("ix_warranty_claims_dealer", claims.c.dealer_id, claims.c.position)

# Facts from intake: which unit a request is about (dispatch's job events carry only the request id).
known_requests = Table(
    "warranty_requests",
    metadata,
    Column("request_id", String(80), primary_key=True),
    Column("serial", String(80), nullable=False),
    Column("dealer_id", String(80)),
    Column("product_line", String(80), nullable=False),
    Column("purchase_date", Date),
    Column("received_at", UtcDateTime, nullable=False),
)
Index("ix_warranty_requests_serial", known_requests.c.serial)

# Facts from dispatch: the jobs that exist, whose they are, who works them, and when they were completed.
known_jobs = Table(
    "warranty_jobs",
    metadata,
    Column("job_id", String(80), primary_key=True),
    Column("request_id", String(80), nullable=False),
    Column("dealer_id", String(80)),
    Column("technician_id", String(80)),
    Column("center_id", String(80)),  # the assigned technician's center (a part request may draw from its store)
    Column("created_at", UtcDateTime),
    Column("last_completed_at", UtcDateTime),
    Column("first_fixed_at", UtcDateTime),
    Column("fixed_by", String(80)),
)
Index("ix_warranty_jobs_request", known_jobs.c.request_id)


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


# --- own aggregates -----------------------------------------------------------------------------------


def swap_view(data: PartSwapped, at: datetime) -> dict[str, Any]:
    return {
        "id": data.swap_id,
        "job_id": data.job_id,
        "request_id": data.request_id,
        "serial": data.serial,
        "part_number": data.part_number,
        "part_category": data.part_category,
        "quantity": data.quantity,
        "old_part_serial": data.old_part_serial,
        "new_part_serial": data.new_part_serial,
        "covered": data.covered,
        "covered_until": data.covered_until.isoformat() if data.covered_until else None,
        "reason": data.reason,
        "unit_cost": str(data.unit_cost),
        "amount": str(money(data.unit_cost * data.quantity)),
        "currency": data.currency,
        "dealer_id": data.dealer_id,
        "recorded_by": data.recorded_by,
        "issued_from": data.issued_from,
        "swapped_at": _time(at),
    }


def claim_view(claim: Claim) -> dict[str, Any]:
    submitted = claim.submitted
    assert submitted is not None
    latest = claim.decisions[-1] if claim.decisions else None
    return {
        "id": claim.claim_id,
        "job_id": submitted.job_id,
        "request_id": submitted.request_id,
        "serial": submitted.serial,
        "dealer_id": submitted.dealer_id,
        "status": claim.status.value if claim.status else None,
        "labour_minutes": submitted.labour_minutes,
        "swap_ids": submitted.swap_ids,
        "amounts": {
            "labour": str(submitted.labour_amount),
            "parts": str(submitted.parts_amount),
            "total": str(submitted.total_amount),
            "currency": submitted.currency,
        },
        "submitted_by": submitted.submitted_by,
        "submitted_at": _time(claim.submitted_at),
        "reasons": [r.model_dump() for r in latest.reasons] if latest else [],
        "decisions": [
            {
                "status": d.status.value,
                "decided_by": d.decided_by,
                "override": d.override,
                "note": d.note,
                "reasons": [r.model_dump() for r in d.reasons],
                "at": _time(d.at),
            }
            for d in claim.decisions
        ],
        "version": claim.version,
    }


def policy_view(policy: ProductLinePolicy) -> dict[str, Any]:
    versions = sorted(policy.versions.values(), key=lambda p: p.effective_from.toordinal() if p.effective_from else 0)
    return {
        "product_line": policy.product_line,
        "versions": [
            {
                "effective_from": p.effective_from.isoformat() if p.effective_from else None,
                "months": p.months,
                "part_months": dict(sorted(p.part_months.items())),
                "excluded_categories": sorted(p.excluded_categories),
            }
            for p in versions
        ],
        "version": policy.version,
    }


def product_view(row: Any) -> dict[str, Any]:
    return {
        "serial": row.serial,
        "model": row.model,
        "product_line": row.product_line,
        "sold_on": row.sold_on.isoformat(),
        "dealer_id": row.dealer_id,
        "registered_at": _time(row.registered_at),
    }


async def save_claim_row(conn: AsyncConnection, claim: Claim, stored: Sequence[EventEnvelope]) -> None:
    row = {
        "claim_id": claim.claim_id,
        "position": stored[0].position,
        "job_id": claim.submitted.job_id,
        "dealer_id": claim.dealer_id,
        "status": claim.status.value,
        "view": json.dumps(claim_view(claim), ensure_ascii=False),
    }
    await upsert(conn, claims, row, key="claim_id", update=["status", "view"])


async def save_policy_row(conn: AsyncConnection, policy: ProductLinePolicy) -> None:
    row = {"product_line": policy.product_line, "view": json.dumps(policy_view(policy), ensure_ascii=False)}
    await upsert(conn, policies, row, key="product_line", update=["view"])


async def save_unit_rows(conn: AsyncConnection, stored: Sequence[EventEnvelope]) -> None:
    """Rows for registrations and swaps among `stored` (many units at once for a bulk import)."""
    registered, swapped = [], []
    for envelope in stored:
        if envelope.type == ProductRegistered.event_type:
            data = ProductRegistered.model_validate_json(envelope.data)
            registered.append(
                {
                    "serial": data.serial,
                    "position": envelope.position,
                    "model": data.model,
                    "product_line": data.product_line,
                    "sold_on": data.sold_on,
                    "dealer_id": data.dealer_id,
                    "registered_at": envelope.time,
                }
            )
        elif envelope.type == PartSwapped.event_type:
            data = PartSwapped.model_validate_json(envelope.data)
            swapped.append(
                {
                    "swap_id": data.swap_id,
                    "position": envelope.position,
                    "job_id": data.job_id,
                    "serial": data.serial,
                    "dealer_id": data.dealer_id,
                    "covered": data.covered,
                    "quantity": data.quantity,
                    "unit_cost": str(data.unit_cost),
                    "view": json.dumps(swap_view(data, envelope.time), ensure_ascii=False),
                }
            )
    if registered:
        await conn.execute(products.insert(), registered)
    if swapped:
        await conn.execute(swaps.insert(), swapped)


async def registered_among(conn: AsyncConnection, serials: list[str]) -> set[str]:
    """Which of `serials` are registered already (in chunks, so thousands fit a statement's parameters)."""
    found: set[str] = set()
    for start in range(0, len(serials), 500):
        chunk = serials[start : start + 500]
        rows = await conn.execute(select(products.c.serial).where(products.c.serial.in_(chunk)))
        found.update(r.serial for r in rows)
    return found


async def unit_streams_among(conn: AsyncConnection, serials: list[str]) -> set[str]:
    """Which of `serials` have a unit stream already (swapped before their sale was registered)."""
    found: set[str] = set()
    for start in range(0, len(serials), 500):
        streams = [Unit.stream_id(serial) for serial in serials[start : start + 500]]
        rows = await conn.execute(
            select(events.c.stream_id)
            .distinct()
            .where(events.c.stream_id.in_(streams), events.c.stream_type == Unit.stream_type)
        )
        found.update(r.stream_id.removeprefix(Unit.stream_id("")) for r in rows)
    return found


# --- facts from other services ------------------------------------------------------------------------


async def request_facts(conn: AsyncConnection, request_id: str) -> Any:
    return (await conn.execute(select(known_requests).where(known_requests.c.request_id == request_id))).first()


async def job_facts(conn: AsyncConnection, job_id: str) -> Any:
    return (await conn.execute(select(known_jobs).where(known_jobs.c.job_id == job_id))).first()


async def fixed_jobs_of(conn: AsyncConnection, serial: str) -> list[Any]:
    """The unit's jobs that dispatch completed fixed, whichever order intake's and dispatch's events came in."""
    query = (
        select(
            known_jobs.c.job_id,
            known_jobs.c.request_id,
            known_jobs.c.dealer_id,
            known_jobs.c.first_fixed_at,
            known_jobs.c.fixed_by,
        )
        .join(known_requests, known_requests.c.request_id == known_jobs.c.request_id)
        .where(known_requests.c.serial == serial, known_jobs.c.first_fixed_at.is_not(None))
        .order_by(known_jobs.c.first_fixed_at)
    )
    return list((await conn.execute(query)).all())
