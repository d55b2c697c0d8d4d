"""intake's HTTP entry points: each route turns its input into a command and calls the application once, and
returns the request's view (validated against `response_model`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field, field_validator

from services.intake.commands import (
    AcceptQuote,
    CancelServiceRequest,
    DeclineQuote,
    EscalateServiceRequest,
    IssueQuote,
    OpenServiceRequest,
    QuotedPart,
    TriageServiceRequest,
)
from services.intake.domain import Status
from services.intake.queries import list_requests, request_view
from services.intake.views import ServiceRequestView
from shared.auth import Role
from shared.clock import utcnow
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import Customer, Product
from shared.http.commands import Command, CommandCall, StrictBody, UtcDatetime, create_once
from shared.http.dependencies import ReadDatabase
from shared.http.pagination import Cursor, Limit, Page, keyset_after
from shared.http.security import CurrentActor, Permission, dealer_for

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


class QuotedPartBody(StrictBody):
    part_number: str = Field(min_length=1, max_length=80, description="A part of warranty's catalogue")
    quantity: int = Field(gt=0, le=10_000)


class QuoteBody(StrictBody):
    labour_minutes: int = Field(ge=0, le=100_000, description="Labour, priced at `LABOUR_RATE_PER_HOUR`")
    parts: list[QuotedPartBody] = Field(default_factory=list, max_length=200)
    note: str | None = Field(None, max_length=2000)
    occurred_at: UtcDatetime | None = None


QuoteId = Field(None, min_length=1, max_length=64, description="The quote decided on; a replaced one is a 409")


class AcceptQuoteBody(StrictBody):
    channel: Channel = Field(description="How the customer's acceptance came in")
    quote_id: str | None = QuoteId
    occurred_at: UtcDatetime | None = Field(None, description="When the customer accepted (defaults to now)")


class DeclineQuoteBody(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)
    quote_id: str | None = QuoteId
    occurred_at: UtcDatetime | None = None


RequestId = Annotated[str, Path(min_length=1, max_length=64, description="The request's id")]


async def visible_request(request_id: RequestId, actor: CurrentActor, db: ReadDatabase) -> ServiceRequestView:
    """The request named in the path, if the caller may see it (404 otherwise, as for one that does not exist)."""
    return await request_view(db, request_id, actor)


VisibleRequest = Annotated[ServiceRequestView, Depends(visible_request)]


@router.post("", status_code=201, responses={201: {"model": ServiceRequestView}}, response_class=JSONResponse)
async def open_service_request(
    body: OpenRequestBody, call: Annotated[CommandCall, Command(Role.agent, Role.dealer, idempotent=True)]
) -> Response:
    """Open a customer's case. A dealer's requests belong to the dealer of its token. An open request for
    the same serial is a 409 that names it (`existing_id`)."""
    command = OpenServiceRequest(
        dealer_id=dealer_for(call.actor, body.dealer_id, action="open requests for itself"),
        channel=body.channel,
        # The contract's own models, from the body's field values (`__dict__`: `model_dump` copied them first).
        customer=Customer(**body.customer.__dict__),
        product=Product(**body.product.__dict__),
        purchase_date=body.purchase_date,
        symptom=body.symptom,
        customer_tier=body.customer_tier,
        urgent=body.urgent,
        occurred_at=body.occurred_at,
    )
    return await create_once(call, command, ServiceRequestView, "/v1/service-requests")


@router.get("/{request_id}", dependencies=[Permission(*READERS)], response_model=ServiceRequestView)
async def get_service_request(request: VisibleRequest) -> ServiceRequestView:
    """One request with its coverage, job and history. Dealers see only their own (404 otherwise)."""
    return request


@router.get("", dependencies=[Permission(*READERS)], response_model=Page[ServiceRequestView])
async def list_service_requests(
    actor: CurrentActor,
    db: ReadDatabase,
    status: Annotated[Status | None, Query()] = None,
    serial: Annotated[str | None, Query(max_length=80)] = None,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ServiceRequestView]:
    """Requests, newest first, filtered by status, serial and dealer. Dealers list only their own."""
    dealer_for(actor, dealer_id, action="list its own requests")
    return await list_requests(
        db, actor, status=status, serial=serial, dealer_id=dealer_id, limit=limit, after=keyset_after(cursor, int)
    )


@router.post("/{request_id}/triage", response_model=ServiceRequestView)
async def triage_service_request(
    request_id: RequestId, body: TriageBody, call: Annotated[CommandCall, Command(Role.agent)]
) -> ServiceRequestView:
    """Decide the service mode and priority. Mode `phone` resolves and closes the request at once."""
    command = TriageServiceRequest(request_id, body.mode, body.priority, body.note, body.occurred_at)
    view: ServiceRequestView = await call.handle(command)
    return view


@router.post("/{request_id}/escalate", response_model=ServiceRequestView)
async def escalate_service_request(
    request_id: RequestId, body: ReasonBody, call: Annotated[CommandCall, Command(Role.agent)]
) -> ServiceRequestView:
    """Hand a received request up before triage."""
    view: ServiceRequestView = await call.handle(EscalateServiceRequest(request_id, body.reason, body.occurred_at))
    return view


@router.post("/{request_id}/cancel", response_model=ServiceRequestView)
async def cancel_service_request(
    request_id: RequestId, body: ReasonBody, call: Annotated[CommandCall, Command(Role.agent, Role.dealer)]
) -> ServiceRequestView:
    """Withdraw a request, until a technician has arrived. Final; frees the serial."""
    view: ServiceRequestView = await call.handle(CancelServiceRequest(request_id, body.reason, body.occurred_at))
    return view


async def _once(command: IssueQuote | AcceptQuote | DeclineQuote, call: CommandCall) -> JSONResponse:
    """A quote, or the customer's decision, once per Idempotency-Key: a partner's system that retries gets the
    first answer back (not a second quote, nor a 409 for an acceptance already made)."""

    async def run() -> JSONResponse:
        view: ServiceRequestView = await call.handle(command)
        return JSONResponse(view.model_dump(mode="json"))

    return await call.run(run)


@router.post("/{request_id}/quote", response_model=ServiceRequestView)
async def quote_service_request(
    request_id: RequestId, body: QuoteBody, call: Annotated[CommandCall, Command(Role.agent, idempotent=True)]
) -> JSONResponse:
    """Price the paid service of a request awaiting a quote (not covered by warranty, triaged to field work):
    labour at the hourly rate, parts from the catalogue. Valid for `QUOTE_VALID_DAYS`; a new quote replaces a
    pending one. A part the catalogue does not know is a 422 naming `parts.<i>.part_number`; a covered request,
    or one not awaiting a quote, a 409."""
    parts = tuple(QuotedPart(p.part_number, p.quantity) for p in body.parts)
    command = IssueQuote(request_id, body.labour_minutes, parts, body.note, body.occurred_at)
    return await _once(command, call)


@router.post("/{request_id}/quote/accept", response_model=ServiceRequestView)
async def accept_quote(
    request_id: RequestId,
    body: AcceptQuoteBody,
    call: Annotated[CommandCall, Command(Role.agent, Role.dealer, idempotent=True)],
) -> JSONResponse:
    """The customer agrees to pay (through the agent or the request's dealer): dispatch creates the job, its
    arrive SLA counted from this acceptance. An expired, declined or replaced quote is a 409."""
    command = AcceptQuote(request_id, body.channel, body.quote_id, body.occurred_at)
    return await _once(command, call)


@router.post("/{request_id}/quote/decline", response_model=ServiceRequestView)
async def decline_quote(
    request_id: RequestId,
    body: DeclineQuoteBody,
    call: Annotated[CommandCall, Command(Role.agent, Role.dealer, idempotent=True)],
) -> JSONResponse:
    """The customer refuses the quote: the request closes (outcome `quote_declined`)."""
    command = DeclineQuote(request_id, body.reason, body.quote_id, body.occurred_at)
    return await _once(command, call)


__all__ = ["router"]
