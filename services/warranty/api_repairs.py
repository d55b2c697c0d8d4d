"""warranty's HTTP entry points for what happens to a unit after the sale: part swaps, dealer claims and their
overrides, returns and exchanges, and the unit's history across dealers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field, field_validator

from services.warranty.api import (
    STAFF_READERS,
    UNKNOWN_REFERENCE,
    Id,
    PathId,
    Queries,
    Serial,
    cursor_value,
    invalid_cursor,
    own_dealer,
    page,
)
from services.warranty.bulk_import import SERIAL_PATTERN
from services.warranty.claims import ClaimStatus
from services.warranty.commands import OverrideClaim, RecordPartSwap, RequestReturn, SubmitClaim
from services.warranty.views import ClaimView, ReturnDecisionView, SwapView, UnitHistory
from shared.auth import Role
from shared.contracts.warranty import ReturnKind
from shared.http.commands import Command, CommandCall, StrictBody, UtcDatetime, create_once
from shared.http.pagination import Cursor, Limit, Page, encode_cursor
from shared.http.security import CurrentActor, Permission

router = APIRouter(tags=["swaps, claims, returns and history"])


class PartSwapBody(StrictBody):
    job_id: Id
    request_id: Id
    serial: str = Field(pattern=SERIAL_PATTERN)
    part_number: Id
    part_category: Id = Field(description="e.g. compressor, pump, filter (case-insensitive)")
    quantity: int = Field(ge=1, le=10_000)
    old_part_serial: Id | None = None
    new_part_serial: Id | None = None
    unit_cost: Decimal = Field(
        ge=0,
        max_digits=12,
        decimal_places=2,
        description="Cost of one part, a decimal (string or number), at most 2 places",
    )
    occurred_at: UtcDatetime | None = Field(None, description="When the part was swapped (defaults to now)")


class ClaimBody(StrictBody):
    job_id: Id
    labour_minutes: int = Field(ge=0, le=100_000)
    swap_ids: list[Id] = Field(default_factory=list, max_length=500)

    @field_validator("swap_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a swap may be listed once")
        return value


class OverrideBody(StrictBody):
    reason: str = Field(min_length=1, max_length=2000, description="Why the officer decides so (recorded)")


class ReturnBody(StrictBody):
    serial: str = Field(pattern=SERIAL_PATTERN)
    kind: ReturnKind
    reason: str = Field(min_length=1, max_length=2000)
    occurred_at: UtcDatetime | None = Field(None, description="When the customer asked (defaults to now)")


@router.post(
    "/v1/part-swaps",
    response_model=SwapView,
    status_code=201,
    responses=UNKNOWN_REFERENCE,
)
async def record_part_swap(
    body: PartSwapBody,
    call: Annotated[CommandCall, Command(Role.technician, Role.dealer, Role.warranty_officer, idempotent=True)],
) -> Response:
    """Record a part replaced during a job, with the old and new part serials. Warranty decides, on the swap
    date and for the part's category, whether it is covered or billable, and says why. The job must be one
    dispatch announced (a dealer's own, a technician's assigned one): otherwise 404."""
    command = RecordPartSwap(
        body.job_id,
        body.request_id,
        body.serial,
        body.part_number,
        body.part_category,
        body.quantity,
        body.unit_cost,
        body.old_part_serial,
        body.new_part_serial,
        body.occurred_at,
    )

    return await create_once(call, command, SwapView, "/v1/part-swaps")


@router.get("/v1/part-swaps/{swap_id}", response_model=SwapView, dependencies=[Permission(*STAFF_READERS, Role.dealer)])
async def get_part_swap(swap_id: PathId, actor: CurrentActor, queries: Queries) -> SwapView:
    """One swap. Dealers see the swaps of their jobs only."""
    return SwapView.model_validate(await queries.swap(swap_id, actor))


@router.get("/v1/part-swaps", response_model=Page[SwapView], dependencies=[Permission(*STAFF_READERS, Role.dealer)])
async def list_part_swaps(
    actor: CurrentActor,
    queries: Queries,
    job_id: Annotated[str | None, Query(max_length=80)] = None,
    serial: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SwapView]:
    """Swaps in the order they were recorded, by job or serial. Dealers list the swaps of their jobs only."""
    items, after = await queries.swaps(
        actor, job_id=job_id, serial=serial, limit=limit, after=cursor_value(cursor, int)
    )
    return page(SwapView, items, after)


@router.post(
    "/v1/claims",
    response_model=ClaimView,
    status_code=201,
    responses=UNKNOWN_REFERENCE,
)
async def submit_claim(
    body: ClaimBody, call: Annotated[CommandCall, Command(Role.dealer, idempotent=True)]
) -> Response:
    """Claim a completed job's labour and covered parts back. Adjudicated at once by the rules (coverage
    valid, swaps belong to the job, filed within 30 days of the job's completion), each with its verdict in
    `reasons`. Another dealer's job is a 404; a second claim for a job, or a job not completed yet, a 409."""
    command = SubmitClaim(body.job_id, body.labour_minutes, tuple(body.swap_ids))

    return await create_once(call, command, ClaimView, "/v1/claims")


@router.get(
    "/v1/claims/{claim_id}",
    response_model=ClaimView,
    dependencies=[Permission(Role.warranty_officer, Role.analyst, Role.dealer)],
)
async def get_claim(claim_id: PathId, actor: CurrentActor, queries: Queries) -> ClaimView:
    """One claim with every decision on it (rules and overrides: who, why, when). Dealers see their own only."""
    return ClaimView.model_validate(await queries.claim(claim_id, actor))


@router.get(
    "/v1/claims",
    response_model=Page[ClaimView],
    dependencies=[Permission(Role.warranty_officer, Role.analyst, Role.dealer)],
)
async def list_claims(
    actor: CurrentActor,
    queries: Queries,
    status: Annotated[ClaimStatus | None, Query()] = None,
    job_id: Annotated[str | None, Query(max_length=80)] = None,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ClaimView]:
    """Claims, newest first, by status, job and dealer. Dealers list their own only."""
    own_dealer(actor, dealer_id, "list claims")
    items, after = await queries.claims(
        actor,
        status=status.value if status else None,
        job_id=job_id,
        dealer_id=dealer_id,
        limit=limit,
        after=cursor_value(cursor, int),
    )
    return page(ClaimView, items, after)


async def _override(claim_id: str, approve: bool, body: OverrideBody, call: CommandCall) -> ClaimView:
    command = OverrideClaim(claim_id, approve, body.reason)
    return ClaimView.model_validate(await call.handle(command))


@router.post("/v1/claims/{claim_id}/approve", response_model=ClaimView)
async def approve_claim(
    claim_id: PathId, body: OverrideBody, call: Annotated[CommandCall, Command(Role.warranty_officer)]
) -> ClaimView:
    """A warranty officer approves a rejected claim, recorded with who and why. Already approved: 409."""
    return await _override(claim_id, True, body, call)


@router.post("/v1/claims/{claim_id}/reject", response_model=ClaimView)
async def reject_claim(
    claim_id: PathId, body: OverrideBody, call: Annotated[CommandCall, Command(Role.warranty_officer)]
) -> ClaimView:
    """A warranty officer rejects an approved claim, recorded with who and why. Already rejected: 409."""
    return await _override(claim_id, False, body, call)


@router.post(
    "/v1/returns",
    response_model=ReturnDecisionView,
    status_code=201,
    responses=UNKNOWN_REFERENCE,
)
async def request_return(
    body: ReturnBody,
    call: Annotated[CommandCall, Command(Role.agent, Role.warranty_officer, Role.dealer, idempotent=True)],
) -> Response:
    """Ask to return (refund) or exchange a registered unit. Decided at once and recorded either way: a
    return within 7 days of the sale, an exchange within 15 (day 0 is the sale date; configurable), or at any
    time once the two-repair rule entitles the unit; otherwise `rejected` with the remedy left (exchange or
    repair). A dealer may ask for the units it sold only."""
    command = RequestReturn(body.serial, body.kind, body.reason, body.occurred_at)

    return await create_once(call, command, ReturnDecisionView)


@router.get(
    "/v1/units/{serial}/history", response_model=UnitHistory, dependencies=[Permission(*STAFF_READERS, Role.dealer)]
)
async def unit_history(
    serial: Serial, actor: CurrentActor, queries: Queries, limit: Limit = 50, cursor: Cursor = None
) -> UnitHistory:
    """One timeline per unit across dealers, oldest first: requests, jobs and visits, part swaps (old and new
    part serials), repairs, claims, returns. A dealer sees only the entries that belong to it."""
    items, next_after = await queries.history(serial, actor, limit=limit, after=_history_cursor(cursor))
    return UnitHistory.model_validate(
        {
            "serial": serial,
            "items": items,
            "next_cursor": encode_cursor(list(next_after)) if next_after is not None else None,
        }
    )


def _history_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """A history cursor is the (time, sequence) of the last entry of the previous page."""
    raw = cursor_value(cursor, list)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(str(raw[0]).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has its offset")
        return moment.astimezone(UTC), int(raw[1])
    except (ValueError, IndexError, TypeError, OverflowError) as exc:
        raise invalid_cursor() from exc


__all__ = ["router"]
