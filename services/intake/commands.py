"""What callers ask intake to do (imperative names). Entry points build these; application handles them (who
asks is a `shared.auth.Actor`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import Customer, Product


@dataclass(frozen=True)
class OpenServiceRequest:
    dealer_id: str | None
    channel: Channel
    customer: Customer
    product: Product
    purchase_date: date | None
    symptom: str
    customer_tier: CustomerTier
    urgent: bool
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class TriageServiceRequest:
    request_id: str
    mode: ServiceMode
    priority: Priority | None = None
    note: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class EscalateServiceRequest:
    request_id: str
    reason: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class CancelServiceRequest:
    request_id: str
    reason: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class QuotedPart:
    part_number: str
    quantity: int


@dataclass(frozen=True)
class IssueQuote:
    request_id: str
    labour_minutes: int
    parts: tuple[QuotedPart, ...]
    note: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class AcceptQuote:
    request_id: str
    channel: Channel
    quote_id: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class DeclineQuote:
    request_id: str
    reason: str
    quote_id: str | None = None
    occurred_at: datetime | None = None
