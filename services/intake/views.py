"""What intake shows of a request (design.md, GET /v1/service-requests/{id}): the pydantic views the read model
stores and the routes return, written once."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from services.intake.domain import ServiceRequest, Status
from shared.clock import rfc3339
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import Customer, Product
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


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


def to_view(request: ServiceRequest) -> ServiceRequestView:
    """The request as the API shows it."""
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
            "version": request.version,
            "history": [
                HistoryEntry(type=t, time=_time(at) or "", actor=actor)
                for (t, at), actor in zip(request.history, request.history_actors(), strict=True)
            ],
        }
    )
