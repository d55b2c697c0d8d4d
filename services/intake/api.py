"""intake's HTTP entry points: each route turns its input into a command and calls the application once."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.intake.application import IntakeApplication
from services.intake.commands import (
    Actor,
    CancelServiceRequest,
    EscalateServiceRequest,
    OpenServiceRequest,
    TriageServiceRequest,
)
from services.intake.domain import Status
from shared.auth import Principal, Role
from shared.clock import utcnow
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import Customer, Product
from shared.http.commands import CommandMetadata, StrictBody, location, UtcDatetime
from shared.http.idempotency import Idempotency
from shared.http.pagination import Cursor, Limit, decode_cursor, encode_cursor
from shared.http.problems import Problem
from shared.http.security import CurrentPrincipal, Permission

router = APIRouter(prefix="/v1/service-requests", tags=["service requests"])

READERS = (Role.agent, Role.dispatcher, Role.analyst, Role.warranty_officer, Role.complaints_officer, Role.dealer)


class CustomerIn(Customer, StrictBody):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ProductIn(Product, StrictBody):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class OpenRequestBody(StrictBody):
    dealer_id: str | None = Field(None, min_length=1, max_length=80, description="Ignored for dealer tokens")
    channel: Channel
    customer: CustomerIn
    product: ProductIn
    purchase_date: date | None = Field(None, description="When the customer bought the unit, if known")
    symptom: str = Field(min_length=1, max_length=2000)
    customer_tier: CustomerTier = CustomerTier.standard
    urgent: bool = False
    occurred_at: UtcDatetime | None = Field(None, description="When the call came in (defaults to now)")

    @field_validator("purchase_date")
    @classmethod
    def _not_in_future(cls, value: date | None) -> date | None:
        if value is not None and value > utcnow().date():
            raise ValueError("purchase_date may not be in the future")
        return value


class TriageBody(StrictBody):
    mode: ServiceMode
    priority: Priority | None = Field(None, description="Defaults: urgent → P1, key account → P2, else P3")
    note: str | None = Field(None, max_length=2000)
    occurred_at: UtcDatetime | None = None


class ReasonBody(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)
    occurred_at: UtcDatetime | None = None


class CoverageView(BaseModel):
    covered: bool
    expires_on: date | None
    reason: str | None = None


class HistoryEntry(BaseModel):
    type: str
    time: str


class ServiceRequestView(BaseModel):
    id: str
    status: Status
    dealer_id: str | None
    channel: Channel
    customer: Customer
    product: Product
    purchase_date: date | None
    symptom: str
    customer_tier: CustomerTier
    urgent: bool
    received_at: str
    mode: ServiceMode | None
    priority: Priority | None
    coverage: CoverageView | None
    job_id: str | None
    version: int
    history: list[HistoryEntry]


class ServiceRequestPage(BaseModel):
    items: list[ServiceRequestView]
    next_cursor: str | None


def _intake(request: Request) -> IntakeApplication:
    return request.app.state.intake


Intake = Annotated[IntakeApplication, Depends(_intake)]
RequestId = Annotated[str, Path(min_length=1, max_length=64, description="The request's id")]


def _actor(principal: Principal) -> Actor:
    return Actor(subject=principal.subject, dealer_scope=principal.dealer_scope)


def _ok(view: dict[str, Any], status: int = 200) -> JSONResponse:
    headers = {"Location": location("/v1/service-requests", view["id"])} if status == 201 else None
    return JSONResponse(view, status_code=status, headers=headers)


@router.post("", status_code=201, dependencies=[Permission(Role.agent, Role.dealer)],
             responses={201: {"model": ServiceRequestView}}, response_class=JSONResponse)
async def open_service_request(body: OpenRequestBody, meta: CommandMetadata, principal: CurrentPrincipal,
                               intake: Intake, idempotent: Idempotency) -> JSONResponse:
    """Open a customer's case. A dealer's requests belong to the dealer of its token. An open request for
    the same serial is a 409 that names it (`existing_id`)."""
    actor = _actor(principal)
    dealer_id = body.dealer_id
    if actor.dealer_scope is not None:
        if dealer_id is not None and dealer_id != actor.dealer_scope:
            raise Problem(403, "A dealer may only open requests for itself.", slug="forbidden",
                          errors=[{"field": "dealer_id", "reason": "differs from the token's dealer_id"}])
        dealer_id = actor.dealer_scope
    command = OpenServiceRequest(
        dealer_id=dealer_id, channel=body.channel, customer=Customer(**body.customer.model_dump()),
        product=Product(**body.product.model_dump()), purchase_date=body.purchase_date, symptom=body.symptom,
        customer_tier=body.customer_tier, urgent=body.urgent, occurred_at=body.occurred_at,
    )

    async def run() -> JSONResponse:
        return _ok(await intake.handle(command, actor, meta), 201)

    return await idempotent.run(run)


@router.get("/{request_id}", dependencies=[Permission(*READERS)], response_model=ServiceRequestView)
async def get_service_request(request_id: RequestId, principal: CurrentPrincipal, intake: Intake) -> JSONResponse:
    """One request with its coverage, job and history. Dealers see only their own (404 otherwise)."""
    return _ok(await intake.get(request_id, _actor(principal)))


@router.get("", dependencies=[Permission(*READERS)], response_model=ServiceRequestPage)
async def list_service_requests(
    principal: CurrentPrincipal,
    intake: Intake,
    status: Annotated[Status | None, Query()] = None,
    serial: Annotated[str | None, Query(max_length=80)] = None,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> JSONResponse:
    """Requests, newest first, filtered by status, serial and dealer. Dealers list only their own."""
    actor = _actor(principal)
    if actor.dealer_scope is not None and dealer_id is not None and dealer_id != actor.dealer_scope:
        raise Problem(403, "A dealer may only list its own requests.", slug="forbidden",
                      errors=[{"field": "dealer_id", "reason": "differs from the token's dealer_id"}])
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, int):
        raise Problem(400, "The cursor is not one this API handed out.", slug="invalid-cursor",
                      errors=[{"field": "cursor", "reason": "not a cursor of this list"}])
    items, next_after = await intake.list(actor, status=status, serial=serial, dealer_id=dealer_id,
                                          limit=limit, after=after)
    return JSONResponse({"items": items, "next_cursor": encode_cursor(next_after) if next_after else None})


@router.post("/{request_id}/triage", dependencies=[Permission(Role.agent)], response_model=ServiceRequestView)
async def triage_service_request(request_id: RequestId, body: TriageBody, meta: CommandMetadata,
                                 principal: CurrentPrincipal, intake: Intake) -> JSONResponse:
    """Decide the service mode and priority. Mode `phone` resolves and closes the request at once."""
    command = TriageServiceRequest(request_id, body.mode, body.priority, body.note, body.occurred_at)
    return _ok(await intake.handle(command, _actor(principal), meta))


@router.post("/{request_id}/escalate", dependencies=[Permission(Role.agent)], response_model=ServiceRequestView)
async def escalate_service_request(request_id: RequestId, body: ReasonBody, meta: CommandMetadata,
                                   principal: CurrentPrincipal, intake: Intake) -> JSONResponse:
    """Hand a received request up before triage."""
    command = EscalateServiceRequest(request_id, body.reason, body.occurred_at)
    return _ok(await intake.handle(command, _actor(principal), meta))


@router.post("/{request_id}/cancel", dependencies=[Permission(Role.agent, Role.dealer)],
             response_model=ServiceRequestView)
async def cancel_service_request(request_id: RequestId, body: ReasonBody, meta: CommandMetadata,
                                 principal: CurrentPrincipal, intake: Intake) -> JSONResponse:
    """Withdraw a request, until a technician has arrived. Final; frees the serial."""
    command = CancelServiceRequest(request_id, body.reason, body.occurred_at)
    return _ok(await intake.handle(command, _actor(principal), meta))


__all__ = ["router"]
