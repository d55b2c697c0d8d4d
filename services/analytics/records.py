"""What analytics keeps of an event: the ids that link it to a request, its business time (`time`), when its
source recorded it (`recordedat`, for `as_of`), and the few data fields the views need — never the
customer's name or phone. Only the types some view counts are kept (`warranty.checked`, say, is
not); a view that needs more starts with a rebuild, which replays the topics from their beginning.

The same extraction serves the live consumer and the replay, so both fold exactly the same facts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.base import EventData
from shared.contracts.topics import COMPLAINTS, DISPATCH, INTAKE, WARRANTY
from shared.events import EventEnvelope
from services.analytics.metrics import to_micros

CONSUMES = [INTAKE, DISPATCH, WARRANTY, COMPLAINTS]

RECEIVED = "service_request.received"
TRIAGED = "service_request.triaged"
ESCALATED = "service_request.escalated"
CANCELLED = "service_request.cancelled"
JOB_CREATED = "job.created"
JOB_ASSIGNED = "job.assigned"
JOB_ARRIVED = "job.arrived"
JOB_COMPLETED = "job.completed"
SLA_BREACHED = "job.sla_breached"
SLA_BREACH_WITHDRAWN = "job.sla_breach_withdrawn"
REVISIT_DONE = "revisit.done"
COMPLAINT_OPENED = "complaint.opened"
JOB_ACCEPTED = "job.accepted"
COMPLAINT_REOPENED = "complaint.reopened"


@dataclass(frozen=True, slots=True)
class AnalyticsEvent:
    """One stored event. Times are microseconds since the epoch (UTC)."""

    event_id: str
    type: str
    request_id: str | None
    job_id: str | None
    time: int
    recorded_at: int
    sequence: int
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def chronological(self) -> tuple:
        """Business order: time, then the position in the source stream, then recording."""
        return (self.time, self.sequence, self.recorded_at, self.event_id)

    @property
    def as_recorded(self) -> tuple:
        """The order in which the source service decided (a withdrawal after the breach it withdraws)."""
        return (self.recorded_at, self.sequence, self.time, self.event_id)


def _v(value: Any) -> Any:
    """Enums as their values, so that the stored JSON is plain."""
    return getattr(value, "value", value)


def _received(d) -> dict:
    return {"dealer_id": d.dealer_id, "region": d.customer.region, "product_line": d.product.product_line}


EXTRACTORS: dict[str, Callable[[Any], dict]] = {
    RECEIVED: _received,
    TRIAGED: lambda d: {"mode": _v(d.mode), "priority": _v(d.priority)},
    ESCALATED: lambda d: {},
    CANCELLED: lambda d: {},
    JOB_CREATED: lambda d: {"dealer_id": d.dealer_id, "region": d.region, "product_line": d.product_line,
                            "mode": _v(d.mode), "priority": _v(d.priority)},
    JOB_ASSIGNED: lambda d: {"center_id": d.center_id, "technician_id": d.technician_id},
    JOB_ARRIVED: lambda d: {"technician_id": d.technician_id},
    JOB_COMPLETED: lambda d: {"technician_id": d.technician_id, "fixed": d.fixed,
                              "reason": _v(getattr(d, "reason", None))},
    SLA_BREACHED: lambda d: {"kind": _v(d.kind)},
    SLA_BREACH_WITHDRAWN: lambda d: {"kind": _v(d.kind)},
    REVISIT_DONE: lambda d: {"satisfaction": d.satisfaction, "nps": d.nps},
    COMPLAINT_OPENED: lambda d: {"complaint_id": d.complaint_id, "dealer_id": d.dealer_id},
    # The process view (services/analytics/process.py): acceptances and reopened complaints.
    JOB_ACCEPTED: lambda d: {"technician_id": d.technician_id},
    COMPLAINT_REOPENED: lambda d: {"complaint_id": d.complaint_id},
}

HANDLED_TYPES = frozenset(EXTRACTORS)


def analytics_event(envelope: EventEnvelope, data: EventData) -> AnalyticsEvent:
    """The stored form of a validated event of one of `HANDLED_TYPES`."""
    return AnalyticsEvent(
        event_id=envelope.id,
        type=envelope.type,
        request_id=getattr(data, "request_id", None),
        job_id=getattr(data, "job_id", None),
        time=to_micros(envelope.time),
        recorded_at=to_micros(envelope.recordedat),
        sequence=envelope.sequence,
        data=EXTRACTORS[envelope.type](data),
    )
