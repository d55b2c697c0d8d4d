"""Events of `dispatch.events`: service centers and technicians, jobs, their SLA, and the follow-up revisit.

Every job event carries `request_id` besides the contract's minimum, so that a consumer keyed by request
(intake, analytics) needs no lookup table. Centers and technicians are event-sourced reference data; their
events carry the whole current record (a consumer keeps the latest one), and their record key / CloudEvents
subject is `center:<center_id>` or `technician:<technician_id>`, so that a center and a technician that share
a name never share a stream."""

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


class CenterKind(StrEnum):
    repair_center = "repair_center"
    branch = "branch"
    authorized_dealer = "authorized_dealer"


class VisitFailureReason(StrEnum):
    """Why a visit did not fix the unit (a `job.completed` with `fixed=false`)."""

    parts_unavailable = "parts_unavailable"
    customer_absent = "customer_absent"
    site_not_ready = "site_not_ready"  # no water, power or access
    needs_expert = "needs_expert"
    wrong_diagnosis = "wrong_diagnosis"
    other = "other"
    unspecified = "unspecified"  # fixed=false recorded without a reason


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
    accept_due: UtcDateTime | None = Field(
        None, description="The accept deadline, set by the job's first assignment (a re-assignment keeps it)"
    )
    previous_technician_id: str | None = Field(None, description="Set when this is a re-assignment")


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
    reason: VisitFailureReason | None = Field(
        None,
        description="Why the visit did not fix the unit: set (`unspecified` when not given) exactly when "
        "`fixed` is false; absent in events recorded before reasons existed",
    )


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


@event("job.cancelled", topic=DISPATCH, subject="job_id")
class JobCancelled(EventData):
    """The job's request was cancelled before the job was completed fixed; its SLA timers stop."""

    job_id: str
    request_id: str
    reason: str


@event("service_center.registered", topic=DISPATCH, subject="center_id")
class ServiceCenterRegistered(EventData):
    """A repair center, branch or authorized dealer can now take jobs in its region. Key `center:<id>`."""

    center_id: str
    name: str
    region: str
    kind: CenterKind
    dealer_id: str | None = None


@event("service_center.updated", topic=DISPATCH, subject="center_id")
class ServiceCenterUpdated(EventData):
    """A center's record changed; carries the whole new record. Key `center:<id>`."""

    center_id: str
    name: str
    region: str
    kind: CenterKind
    dealer_id: str | None = None


@event("technician.registered", topic=DISPATCH, subject="technician_id")
class TechnicianRegistered(EventData):
    """A technician of a center, with the product lines they are skilled for. Key `technician:<id>`."""

    technician_id: str
    center_id: str
    name: str
    skills: list[str]
    active: bool


@event("technician.updated", topic=DISPATCH, subject="technician_id")
class TechnicianUpdated(EventData):
    """A technician's record changed (center, skills, active); carries the whole new record. Key
    `technician:<id>`. Jobs already assigned stay with the technician."""

    technician_id: str
    center_id: str
    name: str
    skills: list[str]
    active: bool


@event("revisit.done", topic=DISPATCH, subject="job_id")
class RevisitDone(EventData):
    """The follow-up contact after a fixed completion recorded the customer's satisfaction."""

    job_id: str
    request_id: str
    satisfaction: int = Field(ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    channel: RevisitChannel
    comment: str | None = None
