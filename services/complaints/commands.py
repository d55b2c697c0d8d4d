"""What callers ask complaints to do (imperative names). Entry points build these; application handles them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contracts.complaints import ComplaintCategory, ComplaintSeverity
from shared.contracts.enums import Channel


@dataclass(frozen=True)
class OpenComplaint:
    request_id: str | None
    job_id: str | None
    dealer_id: str | None
    channel: Channel
    category: ComplaintCategory
    severity: ComplaintSeverity
    description: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class AcknowledgeComplaint:
    complaint_id: str
    note: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class EscalateComplaint:
    complaint_id: str
    reason: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class WaitOnCustomer:
    complaint_id: str
    reason: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RecordCustomerResponse:
    complaint_id: str
    note: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ResolveComplaint:
    complaint_id: str
    resolution: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ReopenComplaint:
    complaint_id: str
    reason: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class CloseComplaint:
    complaint_id: str
    customer_confirmed: bool
    occurred_at: datetime | None = None
