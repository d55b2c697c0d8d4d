"""How warranty's own aggregates are seen: the projector of each aggregate type (its rows and its entries on
the unit's timeline), which the kernel's unit of work runs after each append and the rebuild for every stream."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from services.warranty import timeline
from services.warranty.claims import Claim
from services.warranty.domain import CoverageCheck, ProductLinePolicy, Unit
from services.warranty.parts_domain import Part, PartRequest
from services.warranty.parts_read_model import (
    part_requests,
    part_returns,
    parts,
    project_location,
    project_part,
    project_part_request,
    save_part_returns,
    stock_levels,
    stock_locations,
)
from services.warranty.read_model import (
    claims,
    policies,
    products,
    request_facts,
    save_claim_row,
    save_policy_row,
    save_unit_rows,
    swaps,
)
from services.warranty.stock import StockLocation
from shared.domain import Aggregate
from shared.events import EventEnvelope
from shared.kernel import Projections


def timeline_context(aggregate: Aggregate) -> timeline.Context:
    """What an aggregate's timeline entries belong to when their data does not say."""
    if isinstance(aggregate, Unit):
        return timeline.Context(serial=aggregate.serial, dealer_id=aggregate.dealer_id)
    if isinstance(aggregate, Claim) and aggregate.submitted is not None:
        s = aggregate.submitted
        return timeline.Context(serial=s.serial, request_id=s.request_id, job_id=s.job_id, dealer_id=s.dealer_id)
    return timeline.Context()


async def _on_timeline(conn: AsyncConnection, stored: Sequence[EventEnvelope], context: timeline.Context) -> None:
    await timeline.add(conn, timeline.own_rows(stored, context))


async def project_unit(conn: AsyncConnection, unit: Unit, stored: Sequence[EventEnvelope]) -> None:
    await save_unit_rows(conn, stored)
    await save_part_returns(conn, stored)
    await _on_timeline(conn, stored, timeline_context(unit))


async def project_claim(conn: AsyncConnection, claim: Claim, stored: Sequence[EventEnvelope]) -> None:
    await save_claim_row(conn, claim, stored)
    await _on_timeline(conn, stored, timeline_context(claim))


async def project_policy(conn: AsyncConnection, policy: ProductLinePolicy, stored: Sequence[EventEnvelope]) -> None:
    await save_policy_row(conn, policy)
    await _on_timeline(conn, stored, timeline_context(policy))


async def project_check(conn: AsyncConnection, check: CoverageCheck, stored: Sequence[EventEnvelope]) -> None:
    """A coverage check has no row; its entry belongs to the request's unit and dealer (as intake said)."""
    request = await request_facts(conn, check.business_id)
    await _on_timeline(
        conn,
        stored,
        timeline.Context(
            serial=request.serial if request else None,
            request_id=check.business_id,
            dealer_id=request.dealer_id if request else None,
        ),
    )


PROJECTIONS = Projections()
PROJECTIONS.register(Unit, project_unit, products, swaps, part_returns)
PROJECTIONS.register(Claim, project_claim, claims)
PROJECTIONS.register(ProductLinePolicy, project_policy, policies)
PROJECTIONS.register(CoverageCheck, project_check)
PROJECTIONS.register(Part, project_part, parts)
PROJECTIONS.register(StockLocation, project_location, stock_locations, stock_levels)
PROJECTIONS.register(PartRequest, project_part_request, part_requests)
