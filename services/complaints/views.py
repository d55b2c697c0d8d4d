"""What complaints shows of a complaint: the pydantic view the read model stores and the routes return,
written once."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.complaints.domain import Complaint, Status
from shared.clock import rfc3339
from shared.contracts.complaints import ComplaintCategory, ComplaintSeverity, ComplaintSource
from shared.events import ACTOR_DESCRIPTION, UNKNOWN_ACTOR


class HistoryEntry(BaseModel):
    type: str
    time: str
    # A default for rows a read model stored before events had actors (they are all `system:unknown`).
    actor: str = Field(UNKNOWN_ACTOR, description=ACTOR_DESCRIPTION)


class ComplaintView(BaseModel):
    id: str
    status: Status
    level: int
    category: ComplaintCategory
    severity: ComplaintSeverity
    source: ComplaintSource
    description: str
    satisfaction: int | None
    request_id: str | None
    job_id: str | None
    dealer_id: str | None
    link: str | None = Field(
        description="awaited: the request or job named is not known yet; linked: it arrived; "
        "unresolved: it did not arrive within the grace period; null: nothing "
        "awaited"
    )
    opened_at: str
    ack_due: str
    acknowledged_at: str | None
    acknowledged_in_time: bool | None
    resolve_due: str | None = Field(description="Null while waiting on the customer stops the clock")
    waiting_on_customer_since: str | None
    resolved_at: str | None
    resolution: str | None
    resolved_in_time: bool | None
    next_due: str | None = Field(description="The earliest deadline still to be met")
    closed_at: str | None
    customer_confirmed: bool | None
    reopen_count: int
    appeal_count: int
    version: int
    history: list[HistoryEntry]


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


def to_view(complaint: Complaint) -> ComplaintView:
    """The complaint as the API shows it."""
    c = complaint
    return ComplaintView.model_validate(
        {
            "id": c.id,
            "status": str(c.status),
            "level": c.level,
            "category": str(c.category),
            "severity": str(c.severity),
            "source": str(c.source),
            "description": c.details,
            "satisfaction": c.satisfaction,
            "request_id": c.request_id,
            "job_id": c.job_id,
            "dealer_id": c.dealer_id,
            "link": str(c.link) if c.link else None,
            "opened_at": _time(c.opened_at),
            "ack_due": _time(c.ack_due),
            "acknowledged_at": _time(c.acknowledged_at),
            "acknowledged_in_time": c.acknowledged_in_time,
            "resolve_due": _time(c.resolve_due),
            "waiting_on_customer_since": _time(c.waiting_since),
            "resolved_at": _time(c.resolved_at),
            "resolution": c.resolution,
            "resolved_in_time": c.resolved_in_time,
            "next_due": _time(c.next_due),
            "closed_at": _time(c.closed_at),
            "customer_confirmed": c.customer_confirmed,
            "reopen_count": c.reopen_count,
            "appeal_count": c.appeal_count,
            "version": c.version,
            "history": [
                {"type": t, "time": _time(at), "actor": actor}
                for (t, at), actor in zip(c.history, c.history_actors(), strict=True)
            ],
        }
    )
