"""Events of `dispatch.events`: jobs, their SLA, and the follow-up revisit.

Every job event carries `request_id` besides the contract's minimum, so that a consumer keyed by request
(intake, analytics) needs no lookup table."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from shared.contracts.base import EventData, UtcDateTime, event
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.topics import DISPATCH


class AssignedBy(StrEnum):
    auto = "auto"
    manual = "manual"


class SlaKind(StrEnum):
    accept = "accept"
    arrive = "arrive"


class RevisitChannel(StrEnum):
    phone = "phone"
    sms = "sms"
    visit = "visit"


@event("job.created", topic=DISPATCH, subject="job_id")
class JobCreated(EventData):
    """Field work exists for a triaged request (mode other than phone)."""

    job_id: str
    request_id: str
    mode: ServiceMode
    priority: Priority
    region: str
    product_line: str
    dealer_id: str | None
    accept_due: UtcDateTime | None = None
    arrive_due: UtcDateTime | None = None


@event("job.assigned", topic=DISPATCH, subject="job_id")
class JobAssigned(EventData):
    """A technician of a center was given the job, automatically or by a dispatcher."""

    job_id: str
    request_id: str
    center_id: str
    technician_id: str
    by: AssignedBy


@event("job.accepted", topic=DISPATCH, subject="job_id")
class JobAccepted(EventData):
    """The assigned technician took the job on."""

    job_id: str
    request_id: str
    technician_id: str


@event("job.arrived", topic=DISPATCH, subject="job_id")
class JobArrived(EventData):
    """Service started: the technician is on site, or the unit was checked in."""

    job_id: str
    request_id: str
    technician_id: str


@event("job.completed", topic=DISPATCH, subject="job_id")
class JobCompleted(EventData):
    """A visit ended; `fixed=false` means another visit is needed."""

    job_id: str
    request_id: str
    technician_id: str
    fixed: bool
    resolution: str | None = None


@event("job.sla_breached", topic=DISPATCH, subject="job_id")
class JobSlaBreached(EventData):
    """A deadline passed without its step; stamped with the deadline."""

    job_id: str
    request_id: str
    kind: SlaKind
    due: UtcDateTime


@event("job.sla_breach_withdrawn", topic=DISPATCH, subject="job_id")
class JobSlaBreachWithdrawn(EventData):
    """A late-synced step showed that a breach announced by the timer did not happen."""

    job_id: str
    request_id: str
    kind: SlaKind
    due: UtcDateTime


@event("revisit.done", topic=DISPATCH, subject="job_id")
class RevisitDone(EventData):
    """The follow-up contact after a fixed completion recorded the customer's satisfaction."""

    job_id: str
    request_id: str
    satisfaction: int = Field(ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    channel: RevisitChannel
    comment: str | None = None
