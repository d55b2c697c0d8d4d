"""Events of `intake.events`: the life of a service request."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import EventData, event
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
