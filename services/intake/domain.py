"""The service request aggregate: a customer's case, folded from its events. Pure: no web, database or
Kafka here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from shared.contracts.base import EventData
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import (
    Customer,
    Product,
    ServiceRequestCancelled,
    ServiceRequestClosed,
    ServiceRequestCoverageRecorded,
    ServiceRequestDispatched,
    ServiceRequestEscalated,
    ServiceRequestReceived,
    ServiceRequestResolved,
    ServiceRequestServiceStarted,
    ServiceRequestTriaged,
)
from shared.domain import Aggregate, InvalidTransition


class Status(StrEnum):
    received = "received"
    triaged = "triaged"
    escalated = "escalated"
    dispatched = "dispatched"
    in_service = "in_service"
    resolved = "resolved"
    closed = "closed"
    cancelled = "cancelled"


OPEN_STATUSES = frozenset(Status) - {Status.closed, Status.cancelled}
RESOLVED_BY_PHONE = "resolved_by_phone"


def default_priority(urgent: bool, tier: CustomerTier) -> Priority:
    """urgent → P1, key account → P2, else P3 (design.md, triage)."""
    if urgent:
        return Priority.P1
    if tier == CustomerTier.key_account:
        return Priority.P2
    return Priority.P3


@dataclass
class Coverage:
    covered: bool
    expires_on: date | None
    reason: str | None


@dataclass
class ServiceRequest(Aggregate):
    stream_type = "service_request"

    status: Status | None = None
    dealer_id: str | None = None
    channel: Channel | None = None
    customer: Customer | None = None
    product: Product | None = None
    purchase_date: date | None = None
    symptom: str = ""
    customer_tier: CustomerTier = CustomerTier.standard
    urgent: bool = False
    received_at: datetime | None = None
    mode: ServiceMode | None = None
    priority: Priority | None = None
    coverage: Coverage | None = None
    job_id: str | None = None
    history: list[tuple[str, datetime]] = field(default_factory=list)

    # --- commands -------------------------------------------------------------------------------------

    @classmethod
    def receive(cls, request_id: str, received: ServiceRequestReceived, occurred_at: datetime) -> ServiceRequest:
        request = cls(id=request_id)
        request.record(received, occurred_at)
        return request

    def triage(self, mode: ServiceMode, priority: Priority | None, note: str | None, at: datetime) -> None:
        self._require(Status.received, Status.escalated, action="triage")
        chosen = priority or default_priority(self.urgent, self.customer_tier)
        self.record(ServiceRequestTriaged(request_id=self.id, mode=mode, priority=chosen, note=note), at)
        if mode == ServiceMode.phone:
            self.record(ServiceRequestResolved(request_id=self.id, outcome=RESOLVED_BY_PHONE), at)
            self.record(ServiceRequestClosed(request_id=self.id, outcome=RESOLVED_BY_PHONE), at)

    def escalate(self, reason: str, at: datetime) -> None:
        self._require(Status.received, action="escalate")
        self.record(ServiceRequestEscalated(request_id=self.id, reason=reason), at)

    def cancel(self, reason: str, at: datetime) -> None:
        """Allowed until a technician has arrived."""
        self._require(Status.received, Status.escalated, Status.triaged, Status.dispatched, action="cancel")
        self.record(ServiceRequestCancelled(request_id=self.id, reason=reason), at)

    # --- reactions to other services' facts (idempotent: a fact already reflected changes nothing) ----

    def note_coverage(self, covered: bool, expires_on: date | None, reason: str | None, at: datetime) -> None:
        current = self.coverage
        if current and (current.covered, current.expires_on, current.reason) == (covered, expires_on, reason):
            return
        self.record(
            ServiceRequestCoverageRecorded(request_id=self.id, covered=covered, expires_on=expires_on, reason=reason),
            at,
        )

    def note_job_created(self, job_id: str, at: datetime) -> None:
        if self.status == Status.triaged and self.job_id is None:
            self.record(ServiceRequestDispatched(request_id=self.id, job_id=job_id), at)

    def note_arrival(self, job_id: str, at: datetime) -> None:
        if self.status == Status.dispatched:
            self.record(ServiceRequestServiceStarted(request_id=self.id, job_id=job_id), at)

    def note_completion(self, job_id: str, fixed: bool, at: datetime) -> None:
        """The first fixed completion resolves the request (an arrival we missed is implied by it)."""
        if not fixed or self.status not in (Status.dispatched, Status.in_service):
            return
        if self.status == Status.dispatched:
            self.record(ServiceRequestServiceStarted(request_id=self.id, job_id=job_id), at)
        self.record(ServiceRequestResolved(request_id=self.id, job_id=job_id, outcome="fixed"), at)

    def note_revisit(self, at: datetime) -> None:
        if self.status == Status.resolved:
            self.record(ServiceRequestClosed(request_id=self.id, outcome="resolved_and_revisited"), at)

    # --- state ----------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def _require(self, *allowed: Status, action: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(
                f"cannot {action} a request that is {self.status}; allowed from: "
                + ", ".join(s.value for s in allowed),
                current_status=str(self.status),
            )

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        self.history.append((data.event_type, occurred_at))
        match data:
            case ServiceRequestReceived():
                self.status = Status.received
                self.dealer_id = data.dealer_id
                self.channel = data.channel
                self.customer = data.customer
                self.product = data.product
                self.purchase_date = data.purchase_date
                self.symptom = data.symptom
                self.customer_tier = data.customer_tier
                self.urgent = data.urgent
                self.received_at = occurred_at
            case ServiceRequestTriaged():
                self.status = Status.triaged
                self.mode = data.mode
                self.priority = data.priority
            case ServiceRequestEscalated():
                self.status = Status.escalated
            case ServiceRequestCancelled():
                self.status = Status.cancelled
            case ServiceRequestCoverageRecorded():
                self.coverage = Coverage(data.covered, data.expires_on, data.reason)
            case ServiceRequestDispatched():
                self.status = Status.dispatched
                self.job_id = data.job_id
            case ServiceRequestServiceStarted():
                self.status = Status.in_service
            case ServiceRequestResolved():
                self.status = Status.resolved
            case ServiceRequestClosed():
                self.status = Status.closed
