"""What intake shows of a request (design.md, GET /v1/service-requests/{id}): the pydantic views the read model
stores and the routes return, written once."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from services.intake.domain import QuoteState, ServiceRequest, Status
from shared.clock import rfc3339
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import Customer, Product, QuoteLine
from shared.events import ACTOR_DESCRIPTION, UNKNOWN_ACTOR


class CoverageView(BaseModel):
    covered: bool
    expires_on: date | None
    reason: str | None = None


class HistoryEntry(BaseModel):
    type: str
    time: str
    # A default for rows a read model stored before events had actors (they are all `system:unknown`).
    actor: str = Field(UNKNOWN_ACTOR, description=ACTOR_DESCRIPTION)


class QuoteView(BaseModel):
    """The paid-service quote (the latest one issued) and the customer's decision on it."""

    quote_id: str
    state: QuoteState
    lines: list[QuoteLine]
    labour_minutes: int
    total: Decimal
    currency: str
    valid_until: str
    note: str | None
    issued_at: str
    decided_at: str | None
    channel: Channel | None = Field(None, description="How the acceptance came in")
    reason: str | None = Field(None, description="Why the customer declined")


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
    dispatch_held: bool = Field(
        False, description="Triaged to field work, but no job until warranty's verdict (or a quote's acceptance)"
    )
    quote: QuoteView | None = None
    version: int
    history: list[HistoryEntry]


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


def _quote(request: ServiceRequest) -> QuoteView | None:
    quote = request.quote
    if quote is None:
        return None
    return QuoteView(
        quote_id=quote.quote_id,
        state=quote.state,
        lines=quote.lines,
        labour_minutes=quote.labour_minutes,
        total=quote.total,
        currency=quote.currency,
        valid_until=rfc3339(quote.valid_until),
        note=quote.note,
        issued_at=rfc3339(quote.issued_at),
        decided_at=_time(quote.decided_at),
        channel=quote.channel,
        reason=quote.reason,
    )


# Where `to_view` keeps the last view it built of an aggregate, with the state it was built from: a command's
# handler builds the view of its answer and the projection, in the same unit of work, the read model's row from
# the same state (a request's state changes only by its events, so its version and who recorded them say which).
_MEMO = "_view_memo"


def to_view(request: ServiceRequest) -> ServiceRequestView:
    """The request as the API shows it (built once per state of the aggregate: see `_MEMO`)."""
    state = (request.version, request.recording_actor, len(request.actors))
    memo = request.__dict__.get(_MEMO)
    if memo is not None and memo[0] == state:
        view: ServiceRequestView = memo[1]
        return view
    view = _build_view(request)
    request.__dict__[_MEMO] = (state, view)
    return view


def _build_view(request: ServiceRequest) -> ServiceRequestView:
    coverage = request.coverage
    return ServiceRequestView.model_validate(
        {
            "id": request.id,
            "status": request.status,
            "dealer_id": request.dealer_id,
            "channel": request.channel,
            "customer": request.customer,
            "product": request.product,
            "purchase_date": request.purchase_date,
            "symptom": request.symptom,
            "customer_tier": request.customer_tier,
            "urgent": request.urgent,
            "received_at": _time(request.received_at),
            "mode": request.mode,
            "priority": request.priority,
            "coverage": None
            if coverage is None
            else CoverageView(covered=coverage.covered, expires_on=coverage.expires_on, reason=coverage.reason),
            "job_id": request.job_id,
            "dispatch_held": request.dispatch_held,
            "quote": _quote(request),
            "version": request.version,
            "history": [
                HistoryEntry(type=t, time=_time(at) or "", actor=actor)
                for (t, at), actor in zip(request.history, request.history_actors(), strict=True)
            ],
        }
    )
