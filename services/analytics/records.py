"""What analytics keeps of an event: the ids that link it to a request, its business time (`time`), when its
source recorded it (`recordedat`, for `as_of`), the topic and subject, the few fields the facts are folded from
(`data`, by `EXTRACTORS`), and the whole event data with the customer's name and phone taken out (`payload`, for
process-mining exports). Every event type of the four topics is kept: a type without an extractor is stored
with its payload only, so that a view or an export that starts to need it has it without a rebuild.

The same extraction serves the live consumer and the replay, so both fold exactly the same facts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.analytics.metrics import to_micros
from shared.contracts.base import EventData
from shared.contracts.topics import COMPLAINTS, DISPATCH, INTAKE, WARRANTY
from shared.events import EventEnvelope

CONSUMES = [INTAKE, DISPATCH, WARRANTY, COMPLAINTS]

RECEIVED = "service_request.received"
TRIAGED = "service_request.triaged"
ESCALATED = "service_request.escalated"
CANCELLED = "service_request.cancelled"
JOB_CREATED = "job.created"
JOB_ASSIGNED = "job.assigned"
JOB_ACCEPTED = "job.accepted"
JOB_ARRIVED = "job.arrived"
JOB_COMPLETED = "job.completed"
SLA_BREACHED = "job.sla_breached"
SLA_BREACH_WITHDRAWN = "job.sla_breach_withdrawn"
REVISIT_DONE = "revisit.done"
COMPLAINT_OPENED = "complaint.opened"
COMPLAINT_REOPENED = "complaint.reopened"  # no extractor: the process view reads its payload

# Paid service (intake's quote gate) and the parts ledger (warranty's part requests): folded by `commerce_facts`.
QUOTE_REQUIRED = "service_request.quote_required"
QUOTE_ISSUED = "service_request.quote_issued"
QUOTE_ACCEPTED = "service_request.quote_accepted"
QUOTE_DECLINED = "service_request.quote_declined"
QUOTE_EXPIRED = "service_request.quote_expired"
QUOTE_EXPIRY_WITHDRAWN = "service_request.quote_expiry_withdrawn"
PART_RESERVED = "part_request.reserved"
PART_BACKORDERED = "part_request.backordered"
PART_RECEIVED = "part_request.received"
COMMERCE_TYPES = frozenset(
    {
        QUOTE_REQUIRED,
        QUOTE_ISSUED,
        QUOTE_ACCEPTED,
        QUOTE_DECLINED,
        QUOTE_EXPIRED,
        QUOTE_EXPIRY_WITHDRAWN,
        PART_RESERVED,
        PART_BACKORDERED,
        PART_RECEIVED,
    }
)
# Their activities in a request's path (variants): what was decided or waited for, not every movement.
COMMERCE_ACTIVITIES = {
    QUOTE_ISSUED: "quoted",
    QUOTE_ACCEPTED: "quote_accepted",
    QUOTE_DECLINED: "quote_declined",
    QUOTE_EXPIRED: "quote_expired",
    PART_BACKORDERED: "part_backordered",
    PART_RECEIVED: "part_received",
}

UNSPECIFIED_REASON = "unspecified"  # a fixed=false completion that names no reason (dispatch's default)


# Not frozen: a frozen dataclass sets each field through `object.__setattr__` (3.8 µs for these eleven against 1.0),
# and an event is built once when decoded and again each time a batch reads a request's events back to fold them.
# Nothing assigns to an event after it is built; it was never hashable anyway (`data` is a dict).
@dataclass(slots=True)
class AnalyticsEvent:
    """One stored event. Times are microseconds since the epoch (UTC). `data` holds the fields the facts are
    folded from; `payload` the event's whole data without personal data (None when not kept, e.g. in tests).
    Treated as immutable: fold states share events."""

    event_id: str
    type: str
    request_id: str | None
    job_id: str | None
    time: int
    recorded_at: int
    sequence: int
    data: dict[str, Any] = field(default_factory=dict)
    topic: str = ""
    subject: str = ""
    payload: dict[str, Any] | str | None = None  # a dict, or already its JSON text

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


def _completed(d) -> dict:
    fields = {"technician_id": d.technician_id, "fixed": d.fixed}
    if not d.fixed:  # dispatch adds an optional `reason` to job.completed; older events have none
        fields["reason"] = _v(getattr(d, "reason", None)) or UNSPECIFIED_REASON
    return fields


# event type → the fields the facts read. Types without an entry are kept with their payload only.
EXTRACTORS: dict[str, Callable[[Any], dict]] = {
    RECEIVED: _received,
    TRIAGED: lambda d: {"mode": _v(d.mode), "priority": _v(d.priority)},
    ESCALATED: lambda d: {},
    CANCELLED: lambda d: {},
    JOB_CREATED: lambda d: {
        "dealer_id": d.dealer_id,
        "region": d.region,
        "product_line": d.product_line,
        "mode": _v(d.mode),
        "priority": _v(d.priority),
    },
    JOB_ASSIGNED: lambda d: {"center_id": d.center_id, "technician_id": d.technician_id},
    JOB_ACCEPTED: lambda d: {"technician_id": d.technician_id},
    JOB_ARRIVED: lambda d: {"technician_id": d.technician_id},
    JOB_COMPLETED: _completed,
    SLA_BREACHED: lambda d: {"kind": _v(d.kind)},
    SLA_BREACH_WITHDRAWN: lambda d: {"kind": _v(d.kind)},
    REVISIT_DONE: lambda d: {"satisfaction": d.satisfaction, "nps": d.nps},
    COMPLAINT_OPENED: lambda d: {"complaint_id": d.complaint_id, "dealer_id": d.dealer_id},
    QUOTE_REQUIRED: lambda d: {},
    QUOTE_ISSUED: lambda d: {"quote_id": d.quote_id, "total": str(d.total), "currency": d.currency},
    QUOTE_ACCEPTED: lambda d: {"quote_id": d.quote_id, "total": str(d.total), "currency": d.currency},
    QUOTE_DECLINED: lambda d: {"quote_id": d.quote_id},
    QUOTE_EXPIRED: lambda d: {"quote_id": d.quote_id},
    QUOTE_EXPIRY_WITHDRAWN: lambda d: {"quote_id": d.quote_id},
    PART_RESERVED: lambda d: {
        "part_request_id": d.part_request_id,
        "part_number": d.part_number,
        "location_kind": _v(d.location_kind),
    },
    PART_BACKORDERED: lambda d: {"part_request_id": d.part_request_id, "part_number": d.part_number},
    PART_RECEIVED: lambda d: {"part_request_id": d.part_request_id, "part_number": d.part_number},
}

HANDLED_TYPES = frozenset(EXTRACTORS)  # the types the facts are folded from

# Personal data never stored: the customer's name and phone (and any e-mail), wherever an event carries them.
PERSONAL_KEYS = frozenset({"name", "phone", "email"})
PERSONAL_PARENTS = frozenset({"customer", "contact"})
PERSONAL_TOP_LEVEL = frozenset({"customer_name", "customer_phone", "customer_email", "phone", "email"})


def without_personal_data(data: dict[str, Any]) -> dict[str, Any]:
    """The event data without the customer's name, phone and e-mail (a technician's or a part's name stays)."""
    kept = {}
    for key, value in data.items():
        if key in PERSONAL_TOP_LEVEL:
            continue
        if key in PERSONAL_PARENTS and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in PERSONAL_KEYS}
        kept[key] = value
    return kept


# One scan of the JSON text for any of those keys (a quoted name), instead of one per key.
_PERSONAL_KEY = re.compile('"(?:' + "|".join(sorted(map(re.escape, PERSONAL_PARENTS | PERSONAL_TOP_LEVEL))) + ')"')


def _may_carry_personal_data(text: str) -> bool:
    return _PERSONAL_KEY.search(text) is not None


def analytics_event(envelope: EventEnvelope, data: EventData) -> AnalyticsEvent:
    """The stored form of any validated event of the four topics. Its payload is the event's JSON as it came
    (it was just validated against its contract), rewritten only when it may carry personal data."""
    return stored_event(
        envelope.id,
        envelope.type,
        envelope.subject,
        envelope.topic,
        to_micros(envelope.time),
        to_micros(envelope.recordedat),
        envelope.sequence,
        envelope.data,
        data,
    )


def stored_event(
    event_id: str,
    type_: str,
    subject: str,
    topic: str,
    time: int,
    recorded_at: int,
    sequence: int,
    text: str,
    data: EventData,
) -> AnalyticsEvent:
    """`analytics_event` from the envelope's attributes (times in µs) and its data's JSON `text`."""
    extractor = EXTRACTORS.get(type_)
    folded = extractor(data) if extractor is not None else {}
    payload: dict[str, Any] | str = text
    if _may_carry_personal_data(text):
        payload = without_personal_data(data.model_dump(mode="json"))
        payload.update({k: v for k, v in folded.items() if k not in payload})
    return AnalyticsEvent(
        event_id=event_id,
        type=type_,
        request_id=getattr(data, "request_id", None),
        job_id=getattr(data, "job_id", None),
        time=time,
        recorded_at=recorded_at,
        sequence=sequence,
        data=folded,
        topic=topic,
        subject=subject,
        payload=payload,
    )
