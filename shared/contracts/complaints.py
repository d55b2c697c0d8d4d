"""Events of `complaints.events`: complaints, their deadlines and escalation levels.

Every event carries `complaint_id` (the subject) and, where known, the `request_id` and `job_id` the complaint
is about, so that analytics can count complaints per request, job, dealer or technician without a lookup.
Deadlines travel in the events (`ack_due`, `resolve_due`): consumers need neither our calendar nor our
settings to tell whether a step was in time."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from shared.contracts.base import EventData, UtcDateTime, event
from shared.contracts.topics import COMPLAINTS


class ComplaintCategory(StrEnum):
    attitude = "attitude"
    delay = "delay"
    quality = "quality"
    fee = "fee"
    other = "other"


class ComplaintSeverity(StrEnum):
    general = "general"
    serious = "serious"


class ComplaintSource(StrEnum):
    """How the complaint reached us: a customer's channel, a dealer, or a low revisit score."""

    hotline = "hotline"
    dealer = "dealer"
    web = "web"
    app = "app"
    revisit = "revisit"


class EscalationTrigger(StrEnum):
    manual = "manual"
    acknowledge_overdue = "acknowledge_overdue"
    resolve_overdue = "resolve_overdue"


class ComplaintDeadline(StrEnum):
    acknowledge = "acknowledge"
    resolve = "resolve"


def _level() -> Any:
    return Field(ge=1, le=3, description="Escalation level: 1 (first line) to 3 (management)")


class ComplaintEventData(EventData):
    """What every complaint event carries: the complaint, and the request and job it is about when known."""

    complaint_id: str
    request_id: str | None = None
    job_id: str | None = None


@event("complaint.opened", topic=COMPLAINTS, subject="complaint_id")
class ComplaintOpened(ComplaintEventData):
    """A complaint was opened (by the hotline, a dealer, the web or the app, or automatically from a revisit
    with low satisfaction, then stamped with the revisit's time). It starts at level 1 with its deadlines."""

    dealer_id: str | None
    category: ComplaintCategory
    severity: ComplaintSeverity
    source: ComplaintSource
    details: str = Field("", description="What the complainant said (for source revisit: the score and comment)")
    level: int = _level()
    ack_due: UtcDateTime
    resolve_due: UtcDateTime
    satisfaction: int | None = Field(None, ge=1, le=5, description="The revisit's score, for source revisit")


@event("complaint.acknowledged", topic=COMPLAINTS, subject="complaint_id")
class ComplaintAcknowledged(ComplaintEventData):
    """Someone took the complaint on (or resolved it straight away, which acknowledges it too)."""

    note: str | None = None


@event("complaint.escalated", topic=COMPLAINTS, subject="complaint_id")
class ComplaintEscalated(ComplaintEventData):
    """The complaint went up one level: by hand, or by itself when a deadline passed without its step
    (then stamped with that deadline, `due`)."""

    level: int = _level()
    trigger: EscalationTrigger
    reason: str | None = None
    due: UtcDateTime | None = None


@event("complaint.escalation_withdrawn", topic=COMPLAINTS, subject="complaint_id")
class ComplaintEscalationWithdrawn(ComplaintEventData):
    """A step synced late showed that a deadline the timer escalated for was in fact met (or was moved by a
    pause): the escalation is void and the level goes back down. Stamped with the withdrawn escalation's time."""

    level: int = _level()
    deadline: ComplaintDeadline
    due: UtcDateTime
    reason: str


@event("complaint.waiting_on_customer", topic=COMPLAINTS, subject="complaint_id")
class ComplaintWaitingOnCustomer(ComplaintEventData):
    """The complaint waits for the customer (information, access to the unit): the resolution clock stops.
    `resolve_due` is null when the clock stopped before the deadline, else the deadline already passed."""

    reason: str
    resolve_due: UtcDateTime | None


@event("complaint.customer_responded", topic=COMPLAINTS, subject="complaint_id")
class ComplaintCustomerResponded(ComplaintEventData):
    """The customer answered: the resolution clock runs again, with the deadline moved by the pause."""

    note: str | None = None
    resolve_due: UtcDateTime


@event("complaint.resolved", topic=COMPLAINTS, subject="complaint_id")
class ComplaintResolved(ComplaintEventData):
    """A resolution was given to the customer; closing waits for the customer's confirmation."""

    resolution: str


@event("complaint.reopened", topic=COMPLAINTS, subject="complaint_id")
class ComplaintReopened(ComplaintEventData):
    """A resolved complaint was taken up again, or a closed one appealed (`appeal`, one level up). Both
    deadlines start again from the reopening."""

    reason: str
    appeal: bool
    level: int = _level()
    ack_due: UtcDateTime
    resolve_due: UtcDateTime


@event("complaint.link_awaited", topic=COMPLAINTS, subject="complaint_id")
class ComplaintLinkAwaited(ComplaintEventData):
    """The complaint names a request or job complaints has not heard of yet (its event is still on its way, e.g.
    the hotline opened the request and the complaint in the same minute). The complaint goes on; the link is
    confirmed by `complaint.linked` when the event arrives, or flagged by `complaint.link_unresolved` at `until`."""

    until: UtcDateTime


@event("complaint.linked", topic=COMPLAINTS, subject="complaint_id")
class ComplaintLinked(ComplaintEventData):
    """The request (and job) an awaited link named arrived and belong together: the link is confirmed, with the
    request's id (a complaint that named only a job gets its request) and its dealer. Stamped with the time of
    the event that completed it."""

    dealer_id: str | None


@event("complaint.link_unresolved", topic=COMPLAINTS, subject="complaint_id")
class ComplaintLinkUnresolved(ComplaintEventData):
    """No request or job matching what the complaint named arrived by `until` (the grace period,
    COMPLAINT_UNKNOWN_LINK_GRACE_SECONDS): the complaint goes on without a confirmed link, for someone to look at.
    A later arrival still links it. Stamped with `until`."""

    until: UtcDateTime
    reason: str


@event("complaint.closed", topic=COMPLAINTS, subject="complaint_id")
class ComplaintClosed(ComplaintEventData):
    """The resolved complaint is over, with or without the customer's confirmation."""

    customer_confirmed: bool
