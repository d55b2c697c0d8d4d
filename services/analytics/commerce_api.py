"""The paid-service and part-wait views' HTTP entry points (design.md: intake "Paid service", warranty "Parts",
analytics): group_by, `[from, to)`, `as_of` and the dealer scope as every other view; SQL over the versioned
facts (`commerce_sql`), held equal to the reference definitions (`commerce_views`) by property tests."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.analytics import commerce_sql
from services.analytics.api import VIEWERS, GroupedQuery, Views
from shared.http.security import Permission

router = APIRouter(tags=["paid service and parts"])


class PaidServiceRow(BaseModel):
    key: str
    currency: str | None = Field(description="The quotes' currency (one row per key and currency)")
    quotes_issued: int
    accepted: int
    declined: int
    expired: int = Field(description="Expired quotes whose expiry was not withdrawn by a late-synced acceptance")
    acceptance_rate_pct: float | None = Field(description="accepted / (accepted + declined + expired) × 100")
    revenue: str = Field(description="Sum of the accepted quotes' totals, a decimal string to the cent")


class PartWaitRow(BaseModel):
    key: str
    part_number: str | None
    part_requests: int
    waiting: int = Field(description="Part requests that could not be served from the technician's van")
    received: int = Field(description="Waiting part requests received in the van (their wait is measured)")
    median_wait_minutes: float | None
    p90_wait_minutes: float | None
    total_wait_minutes: float | None


class PaidServiceView(BaseModel):
    rows: list[PaidServiceRow]


class PartWaitView(BaseModel):
    rows: list[PartWaitRow]


@router.get("/v1/views/paid-service", dependencies=[Permission(*VIEWERS)])
async def paid_service(query: GroupedQuery, analytics: Views) -> PaidServiceView:
    """Paid service over the requests received in `[from, to)` that got a quote, per key and currency: quotes
    issued (distinct quotes; one issued while another was pending replaces it), accepted, declined and expired
    (an expiry withdrawn because an acceptance made in time synced late does not count; the acceptance does);
    `acceptance_rate_pct` = accepted / (accepted + declined + expired) × 100 (null when none is decided);
    `revenue` = the sum of the accepted quotes' totals, a decimal string."""
    return PaidServiceView.model_validate({"rows": await analytics.view(commerce_sql.paid_service_rows, query)})


@router.get("/v1/views/part-waits", dependencies=[Permission(*VIEWERS)])
async def part_waits(query: GroupedQuery, analytics: Views) -> PartWaitView:
    """The parts that make jobs wait most, over the part requests of the requests received in `[from, to)`,
    per key and part number, the longest total wait first. A part request *waits* when it could not be served
    from the technician's van (backordered, or reserved at a center or warehouse); its wait runs from its first
    reservation or backorder to its first receipt in the van. `part_requests` counts all, `waiting` those that
    waited, `received` those whose wait is measured; median, nearest-rank p90 and total wait minutes."""
    return PartWaitView.model_validate({"rows": await analytics.view(commerce_sql.part_wait_rows, query)})
