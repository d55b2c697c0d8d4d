"""Events of `intake.events`: the life of a service request."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import EventData, UtcDateTime, event
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.topics import INTAKE


class Customer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)
    region: str = Field(min_length=1, max_length=80)


class Product(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    serial: str = Field(min_length=1, max_length=80)
    model: str = Field(min_length=1, max_length=120)
    product_line: str = Field(min_length=1, max_length=80)


@event("service_request.received", topic=INTAKE, subject="request_id")
class ServiceRequestReceived(EventData):
    """A customer's case was opened by a dealer, the hotline, the web or the app."""

    request_id: str
    dealer_id: str | None
    channel: Channel
    customer: Customer
    product: Product
    purchase_date: date | None
    symptom: str
    customer_tier: CustomerTier
    urgent: bool


@event("service_request.triaged", topic=INTAKE, subject="request_id")
class ServiceRequestTriaged(EventData):
    """An agent decided how the case is served and how urgent it is."""

    request_id: str
    mode: ServiceMode
    priority: Priority
    note: str | None = None
    dispatch_held: bool = Field(
        False,
        description="true: no job yet; dispatch waits for `service_request.cleared_for_dispatch` (warranty's "
        "verdict is not in yet, or the case is paid service and waits for the customer to accept a quote). "
        "false, and every event from before this field: dispatch creates the job on this event",
    )


@event("service_request.escalated", topic=INTAKE, subject="request_id")
class ServiceRequestEscalated(EventData):
    """The case was handed up before triage (e.g. to second-level support)."""

    request_id: str
    reason: str


@event("service_request.cancelled", topic=INTAKE, subject="request_id")
class ServiceRequestCancelled(EventData):
    """The case was withdrawn; final. The serial is free for a new request."""

    request_id: str
    reason: str


@event("service_request.coverage_recorded", topic=INTAKE, subject="request_id")
class ServiceRequestCoverageRecorded(EventData):
    """Intake took note of warranty's coverage decision for the case (caused by `warranty.checked`)."""

    request_id: str
    covered: bool
    expires_on: date | None = None
    reason: str | None = None


@event("service_request.dispatched", topic=INTAKE, subject="request_id")
class ServiceRequestDispatched(EventData):
    """A job exists for the case (caused by `job.created`)."""

    request_id: str
    job_id: str


@event("service_request.service_started", topic=INTAKE, subject="request_id")
class ServiceRequestServiceStarted(EventData):
    """A technician arrived on site or the unit was checked in (caused by the first `job.arrived`)."""

    request_id: str
    job_id: str


@event("service_request.resolved", topic=INTAKE, subject="request_id")
class ServiceRequestResolved(EventData):
    """The customer's problem is solved: on the phone, or by the job's first fixed completion."""

    request_id: str
    job_id: str | None = None
    outcome: str


@event("service_request.closed", topic=INTAKE, subject="request_id")
class ServiceRequestClosed(EventData):
    """The case is over: resolved by phone, or its follow-up revisit was recorded."""

    request_id: str
    outcome: str


# --- paid service: the quote gate (design.md, intake, "Paid service") ---------------------------------------


class ClearedBy(StrEnum):
    coverage = "coverage"
    quote_accepted = "quote_accepted"


class QuoteLineKind(StrEnum):
    labour = "labour"
    part = "part"


class QuoteLine(BaseModel):
    """One priced line of a quote. Money is a decimal string in the quote's currency, exact to the cent."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: QuoteLineKind
    part_number: str | None = Field(None, description="The catalogue's part number (parts only)")
    description: str
    quantity: int = Field(description="Units of the part, or minutes of labour")
    unit_price: Decimal = Field(description="Price of one part, or of one hour of labour")
    amount: Decimal = Field(description="quantity × unit_price (labour: minutes / 60 × rate), rounded to the cent")


@event("service_request.quote_required", topic=INTAKE, subject="request_id")
class ServiceRequestQuoteRequired(EventData):
    """The case is not covered by warranty and was triaged to field work: it waits in `awaiting_quote` until the
    customer accepts a quote (no job before that)."""

    request_id: str
    reason: str | None = Field(None, description="Why it is paid service: warranty's coverage reason")


@event("service_request.quote_issued", topic=INTAKE, subject="request_id")
class ServiceRequestQuoteIssued(EventData):
    """We priced the paid service (labour at the configured hourly rate, parts from the catalogue). A quote
    issued while another is still pending replaces it."""

    request_id: str
    quote_id: str
    lines: list[QuoteLine]
    labour_minutes: int
    total: Decimal = Field(description="Sum of the lines' amounts")
    currency: str
    valid_until: UtcDateTime = Field(description="After this instant the quote expires and the case closes")
    note: str | None = None


@event("service_request.quote_accepted", topic=INTAKE, subject="request_id")
class ServiceRequestQuoteAccepted(EventData):
    """The customer (through the agent or the request's dealer) agreed to pay the quote."""

    request_id: str
    quote_id: str
    channel: Channel
    total: Decimal
    currency: str


@event("service_request.quote_declined", topic=INTAKE, subject="request_id")
class ServiceRequestQuoteDeclined(EventData):
    """The customer refused the quote; the case closes (outcome `quote_declined`)."""

    request_id: str
    quote_id: str
    reason: str


@event("service_request.quote_expired", topic=INTAKE, subject="request_id")
class ServiceRequestQuoteExpired(EventData):
    """Nobody accepted the quote before `valid_until` (stamped with it); the case closes (outcome `quote_expired`)."""

    request_id: str
    quote_id: str
    valid_until: UtcDateTime


@event("service_request.quote_expiry_withdrawn", topic=INTAKE, subject="request_id")
class ServiceRequestQuoteExpiryWithdrawn(EventData):
    """An acceptance made by `valid_until` (a step exactly on it is in time) but recorded after the expiry timer
    fired (a dealer's offline device synced late) proves the expiry wrong: the `quote_expired` and the close that
    followed it no longer hold, and the request is open again. Stamped like the expiry it withdraws
    (`valid_until`, as `job.sla_breach_withdrawn` is stamped with its due), so a reader in business time meets
    it right after what it withdraws; `service_request.quote_accepted` and `cleared_for_dispatch` follow,
    stamped with the acceptance (`accepted_at`)."""

    request_id: str
    quote_id: str
    accepted_at: UtcDateTime = Field(description="When the customer accepted (at or before `valid_until`)")


@event("service_request.cleared_for_dispatch", topic=INTAKE, subject="request_id")
class ServiceRequestClearedForDispatch(EventData):
    """A field request whose `service_request.triaged` said `dispatch_held` may now get its job: warranty's
    verdict arrived and covers it, or the customer accepted the quote. Dispatch creates the job on this event
    and counts the arrive SLA from `arrive_sla_from` (the receipt; for paid service the acceptance, since the
    time the customer took to decide is the customer's)."""

    request_id: str
    mode: ServiceMode
    priority: Priority
    arrive_sla_from: UtcDateTime
    cleared_by: ClearedBy
    quote_id: str | None = None
