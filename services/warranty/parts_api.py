"""warranty's HTTP entry points for the parts ledger: the catalogue, stock locations, receipts and transfers,
stock per location, part requests for jobs (reserve or backorder, ship, receive) and defective-part returns.
Each route turns its input into a command or a query and calls it once."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from services.warranty.api import (
    STAFF_READERS,
    UNKNOWN_REFERENCE,
    Id,
    PathId,
    cursor_value,
    invalid_cursor,
    page,
)
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
from services.warranty.parts_queries import PartsQueries
from services.warranty.views import (
    LocationView,
    PartRequestView,
    PartReturnView,
    PartView,
    ReceiptView,
    StockLevelView,
    TransferView,
)
from shared.auth import Actor, Role
from shared.contracts.warranty import LocationKind, PartCondition
from shared.http.commands import Command, CommandCall, StrictBody, UtcDatetime, create_once, location, validated
from shared.http.pagination import Cursor, Limit, Page
from shared.http.problems import Problem
from shared.http.security import CurrentActor, Permission

router = APIRouter(tags=["parts ledger"])

Quantity = Annotated[int, Field(ge=1, le=100_000, description="How many parts (at least 1)")]
# When the movement happened (defaults to now): stores and vans sync their paperwork late, as technicians do.
OccurredAt = Annotated[UtcDatetime | None, Field(None, description="When it happened (defaults to now)")]
STOCK_KEEPERS = (Role.warranty_officer, Role.dispatcher)
STOCK_READERS = (*STAFF_READERS, Role.technician)


def _queries(request: Request) -> PartsQueries:
    return request.app.state.parts_queries


Queries = Annotated[PartsQueries, Depends(_queries)]


def manufacturer_only(actor: Actor, what: str) -> None:
    """The catalogue and the stock are the manufacturer's: a dealer token may not change or read them, whatever
    other roles it carries (403)."""
    if actor.dealer_scope is not None:
        raise Problem(403, f"A dealer token may not {what}, whatever other roles it holds.", slug="forbidden")


class PartBody(StrictBody):
    part_number: Id
    name: str = Field(min_length=1, max_length=200)
    category: Id = Field(description="The category coverage and return rules are keyed by (case-insensitive)")
    unit_price: Decimal = Field(ge=0, max_digits=12, decimal_places=2, description="Price of one part")
    currency: str | None = Field(None, pattern="^[A-Za-z]{3}$", description="ISO 4217 (default: warranty's)")


class LocationBody(StrictBody):
    id: Id
    kind: LocationKind
    center_id: Id | None = Field(None, description="The center whose store this is (required for kind center)")
    technician_id: Id | None = Field(None, description="The technician who drives the van (required for a van)")


class ReceiptBody(StrictBody):
    location_id: Id
    part_number: Id
    quantity: Quantity
    reference: str | None = Field(None, max_length=200, description="e.g. the supplier's delivery note")
    occurred_at: OccurredAt = None


class TransferBody(StrictBody):
    from_location_id: Id
    to_location_id: Id
    part_number: Id
    quantity: Quantity
    occurred_at: OccurredAt = None


class PartRequestBody(StrictBody):
    job_id: Id
    part_number: Id
    quantity: Quantity
    occurred_at: OccurredAt = None


class ShipBody(StrictBody):
    occurred_at: OccurredAt = None


class ReceiveBody(StrictBody):
    quantity: Quantity | None = Field(None, description="How many arrived (default: everything shipped)")
    occurred_at: OccurredAt = None


class PartReturnBody(StrictBody):
    swap_id: Id
    old_part_serial: Id
    condition: PartCondition
    occurred_at: OccurredAt = None


# --- catalogue ---------------------------------------------------------------------------------------------


@router.post(
    "/v1/parts",
    response_model=PartView,
    status_code=201,
    responses={200: {"model": PartView, "description": "A part already catalogued, re-priced"}},
)
async def register_part(
    body: PartBody, call: Annotated[CommandCall, Command(Role.warranty_officer, idempotent=True)]
) -> JSONResponse:
    """Enter a spare part in the catalogue (201), or re-price a catalogued one (200; the last registration
    holds and intake's quotes price from it). Registering exactly what holds already records nothing (200)."""
    manufacturer_only(call.actor, "change the parts catalogue")
    command = RegisterPart(body.part_number, body.name, body.category, body.unit_price, body.currency)

    async def run() -> JSONResponse:
        registered = await call.handle(command)
        if registered.created:
            return validated(PartView, registered.view, 201, {"Location": location("/v1/parts", body.part_number)})
        return validated(PartView, registered.view)

    return await call.run(run)


@router.get("/v1/parts", response_model=Page[PartView], dependencies=[Permission(*STOCK_READERS, Role.dealer)])
async def list_parts(
    queries: Queries,
    category: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PartView]:
    """The catalogue by part number, optionally of one category."""
    items, after = await queries.parts(category=category, limit=limit, after=cursor_value(cursor, str))
    return page(PartView, items, after)


@router.get("/v1/parts/{part_number}", response_model=PartView, dependencies=[Permission(*STOCK_READERS, Role.dealer)])
async def get_part(part_number: PathId, queries: Queries) -> PartView:
    """One catalogued part with its current price."""
    return PartView.model_validate(await queries.part(part_number))


# --- locations and stock ---------------------------------------------------------------------------------


@router.post("/v1/stock-locations", response_model=LocationView, status_code=201)
async def register_stock_location(
    body: LocationBody, call: Annotated[CommandCall, Command(*STOCK_KEEPERS, idempotent=True)]
) -> Response:
    """A place that holds parts: a warehouse, a center's store (names its `center_id`) or a technician's van
    (names its `technician_id`; one van per technician). An id taken, or a technician with a van, is a 409."""
    manufacturer_only(call.actor, "register stock locations")
    command = RegisterStockLocation(body.id, body.kind, body.center_id, body.technician_id)

    return await create_once(call, command, LocationView, "/v1/stock-locations")


@router.get("/v1/stock-locations", response_model=Page[LocationView], dependencies=[Permission(*STOCK_READERS)])
async def list_stock_locations(
    actor: CurrentActor,
    queries: Queries,
    kind: Annotated[LocationKind | None, Query()] = None,
    center_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[LocationView]:
    """Stock locations in the order they were registered, by kind and center."""
    manufacturer_only(actor, "read the stock locations")
    items, after = await queries.locations(
        kind=kind.value if kind else None, center_id=center_id, limit=limit, after=cursor_value(cursor, int)
    )
    return page(LocationView, items, after)


@router.post(
    "/v1/stock/receipts",
    response_model=ReceiptView,
    status_code=201,
    responses=UNKNOWN_REFERENCE,
)
async def receive_stock(
    body: ReceiptBody, call: Annotated[CommandCall, Command(*STOCK_KEEPERS, idempotent=True)]
) -> Response:
    """Parts arrived at a location (a supplier's delivery). The oldest backordered part requests this location
    may serve and that now fit are reserved at once (`reserved_for`). An unknown location or part is a 404
    naming the field."""
    manufacturer_only(call.actor, "receive stock")
    command = ReceiveStock(body.location_id, body.part_number, body.quantity, body.reference, body.occurred_at)

    return await create_once(call, command, ReceiptView)


@router.post(
    "/v1/stock/transfers",
    response_model=TransferView,
    status_code=201,
    responses=UNKNOWN_REFERENCE,
)
async def transfer_stock(
    body: TransferBody, call: Annotated[CommandCall, Command(*STOCK_KEEPERS, idempotent=True)]
) -> Response:
    """Move available parts from one location to another. More than the source has available is a 409 naming
    what is there; backorders the target may serve are reserved as for a receipt."""
    manufacturer_only(call.actor, "transfer stock")
    command = TransferStock(
        body.from_location_id, body.to_location_id, body.part_number, body.quantity, body.occurred_at
    )

    return await create_once(call, command, TransferView)


@router.get(
    "/v1/stock",
    response_model=Page[StockLevelView],
    responses=UNKNOWN_REFERENCE,
    dependencies=[Permission(*STOCK_READERS)],
)
async def get_stock(
    actor: CurrentActor,
    queries: Queries,
    location_id: Annotated[str | None, Query(max_length=80)] = None,
    part_number: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[StockLevelView]:
    """Stock per (location, part): on hand, reserved for part requests, and available (on hand − reserved)."""
    manufacturer_only(actor, "read the stock")
    items, after = await queries.stock(
        location_id=location_id, part_number=part_number, limit=limit, after=_pair(cursor_value(cursor, list))
    )
    return page(StockLevelView, items, after)


def _pair(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise invalid_cursor()
    return value[0], value[1]


# --- part requests ------------------------------------------------------------------------------------------

PART_REQUESTERS = (Role.technician, Role.dealer, Role.dispatcher, Role.warranty_officer)


@router.post(
    "/v1/part-requests",
    response_model=PartRequestView,
    status_code=201,
    responses=UNKNOWN_REFERENCE,
)
async def request_part(
    body: PartRequestBody, call: Annotated[CommandCall, Command(*PART_REQUESTERS, idempotent=True)]
) -> Response:
    """Parts for a job: reserved from the assigned technician's van, else his center's store, else a warehouse
    (the first with the whole quantity available), or backordered until a receipt or transfer brings it. The
    job must be one dispatch announced and the caller's (404); a job completed fixed is a 409."""
    command = RequestPart(body.job_id, body.part_number, body.quantity, body.occurred_at)

    return await create_once(call, command, PartRequestView, "/v1/part-requests")


@router.get(
    "/v1/part-requests", response_model=Page[PartRequestView], dependencies=[Permission(*STOCK_READERS, Role.dealer)]
)
async def list_part_requests(
    actor: CurrentActor,
    queries: Queries,
    job_id: Annotated[str | None, Query(max_length=80)] = None,
    status: Annotated[str | None, Query(pattern="^(backordered|reserved|shipped|received|released)$")] = None,
    part_number: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PartRequestView]:
    """Part requests, oldest first, by job, status and part. Dealers list those of their own jobs; technicians
    those of the jobs assigned to them."""
    items, after = await queries.part_requests(
        actor, job_id=job_id, status=status, part_number=part_number, limit=limit, after=cursor_value(cursor, int)
    )
    return page(PartRequestView, items, after)


@router.get(
    "/v1/part-requests/{part_request_id}",
    response_model=PartRequestView,
    dependencies=[Permission(*STOCK_READERS, Role.dealer)],
)
async def get_part_request(part_request_id: PathId, actor: CurrentActor, queries: Queries) -> PartRequestView:
    """One part request and where it stands."""
    return PartRequestView.model_validate(await queries.part_request(part_request_id, actor))


@router.post(
    "/v1/part-requests/{part_request_id}/ship",
    response_model=PartRequestView,
)
async def ship_part_request(
    part_request_id: PathId,
    call: Annotated[CommandCall, Command(*STOCK_KEEPERS)],
    body: Annotated[ShipBody | None, Body()] = None,
) -> PartRequestView:
    """The warehouse (or center) hands a reserved request's parts over for the van of the job's technician:
    they leave its stock. Not reserved, reserved in the van already, or a technician without a van: 409. The
    body is optional (`occurred_at`)."""
    command = ShipPartRequest(part_request_id, body.occurred_at if body else None)
    return PartRequestView.model_validate(await call.handle(command))


@router.post(
    "/v1/part-requests/{part_request_id}/receive",
    response_model=PartRequestView,
)
async def receive_part_request(
    part_request_id: PathId,
    body: ReceiveBody,
    call: Annotated[CommandCall, Command(Role.technician, Role.dispatcher, Role.warranty_officer)],
) -> PartRequestView:
    """The technician takes shipped parts into his van, where they stay reserved for the job (a swap uses them
    first). More than was shipped and not yet received is a 422; a request not shipped a 409."""
    command = ReceivePartRequest(part_request_id, body.quantity, body.occurred_at)
    return PartRequestView.model_validate(await call.handle(command))


# --- part returns ------------------------------------------------------------------------------------------


@router.post(
    "/v1/part-returns",
    response_model=PartReturnView,
    status_code=201,
    responses=UNKNOWN_REFERENCE,
)
async def return_part(
    body: PartReturnBody,
    call: Annotated[CommandCall, Command(Role.technician, Role.dealer, Role.warranty_officer, idempotent=True)],
) -> Response:
    """The old part of a swap came back, with its condition (once per swap; the old part serial the swap
    recorded, if it recorded one). A claim for a covered swap of a category in `RETURN_REQUIRED_CATEGORIES`
    fails the rule `defective_part_returned` until then."""
    command = ReturnPart(body.swap_id, body.old_part_serial, body.condition, body.occurred_at)

    return await create_once(call, command, PartReturnView, "/v1/part-returns")


@router.get(
    "/v1/part-returns", response_model=Page[PartReturnView], dependencies=[Permission(*STAFF_READERS, Role.dealer)]
)
async def list_part_returns(
    actor: CurrentActor,
    queries: Queries,
    job_id: Annotated[str | None, Query(max_length=80)] = None,
    swap_id: Annotated[str | None, Query(max_length=80)] = None,
    serial: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PartReturnView]:
    """Part returns in the order they were recorded. Dealers list those of their own jobs."""
    items, after = await queries.part_returns(
        actor, job_id=job_id, swap_id=swap_id, serial=serial, limit=limit, after=cursor_value(cursor, int)
    )
    return page(PartReturnView, items, after)


@router.get(
    "/v1/part-returns/{return_id}",
    response_model=PartReturnView,
    dependencies=[Permission(*STAFF_READERS, Role.dealer)],
)
async def get_part_return(return_id: PathId, actor: CurrentActor, queries: Queries) -> PartReturnView:
    """One part return. Dealers see the returns of their own jobs only."""
    return PartReturnView.model_validate(await queries.part_return(return_id, actor))


__all__ = ["router"]
