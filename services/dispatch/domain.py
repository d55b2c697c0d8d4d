"""The job aggregate: the field work for one triaged request, folded from its events, with its SLA.

A job's SLA is judged on the times of its steps, never on the timer's guesses: a first acceptance or arrival
later than its deadline is a breach (recorded by the step itself when the timer has not announced it yet),
and one on or before its deadline withdraws a breach the timer announced too early. Pure: no web, database or
Kafka here."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from services.dispatch.sla import SlaPolicy, is_late
from shared.contracts.base import EventData
from shared.contracts.dispatch import (
    AssignedBy,
    JobAccepted,
    JobArrived,
    JobAssigned,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobSlaBreached,
    JobSlaBreachWithdrawn,
    RevisitChannel,
    RevisitDone,
    SlaKind,
    VisitFailureReason,
)
from shared.contracts.enums import Priority, ServiceMode
from shared.domain import Aggregate, Forbidden, InvalidTransition, RuleViolation, transition_refused

# Job ids derive from request ids: however often a triage arrives, it names one stream, and the event
# store's (stream, version) key lets only one creation win.
JOB_ID_NAMESPACE = uuid.UUID("6f1c3c51-4e0b-4a8e-9d7e-2b6f0d8a1c11")
_NAMESPACE_BYTES = JOB_ID_NAMESPACE.bytes


def job_id_for(request_id: str) -> str:
    """`str(uuid.uuid5(JOB_ID_NAMESPACE, request_id))`, spelled out: the same SHA-1 and bits without the two UUID
    objects, a third of the time (a triage makes one)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + request_id.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class JobStatus(StrEnum):
    unassigned = "unassigned"
    assigned = "assigned"
    accepted = "accepted"
    in_service = "in_service"  # a visit is under way (on site, or the unit is checked in)
    repeat_visit_needed = "repeat_visit_needed"  # completed with fixed=false
    completed = "completed"  # completed fixed
    revisited = "revisited"  # the follow-up contact is recorded
    cancelled = "cancelled"


# A technician's load for auto-assignment: "assigned and not yet completed fixed".
LOAD_STATUSES = frozenset({JobStatus.assigned, JobStatus.accepted, JobStatus.in_service, JobStatus.repeat_visit_needed})
OPEN_STATUSES = LOAD_STATUSES | {JobStatus.unassigned}


@dataclass(frozen=True)
class RequestFacts:
    """What dispatch learnt about a request from `service_request.received`."""

    request_id: str
    dealer_id: str | None
    region: str
    product_line: str
    received_at: datetime


@dataclass(frozen=True)
class Assignee:
    technician_id: str
    center_id: str
    active: bool
    skills: frozenset[str]


@dataclass
class Visit:
    technician_id: str
    arrived_at: datetime
    completed_at: datetime | None = None
    fixed: bool | None = None
    resolution: str | None = None
    reason: VisitFailureReason | None = None  # why it did not fix the unit


@dataclass(frozen=True)
class Revisit:
    satisfaction: int
    nps: int | None
    channel: RevisitChannel
    comment: str | None
    at: datetime


@dataclass
class Job(Aggregate):
    request_id: str = ""
    mode: ServiceMode = ServiceMode.onsite
    priority: Priority = Priority.P3
    region: str = ""
    product_line: str = ""
    dealer_id: str | None = None
    status: JobStatus = JobStatus.unassigned
    technician_id: str | None = None
    center_id: str | None = None
    created_at: datetime | None = None
    accept_due: datetime | None = None
    arrive_due: datetime | None = None
    accepted_at: datetime | None = None  # the first acceptance
    arrived_at: datetime | None = None  # the first arrival
    completed_at: datetime | None = None  # the first fixed completion
    visits: list[Visit] = field(default_factory=list)
    breaches: dict[SlaKind, datetime] = field(default_factory=dict)  # kind → deadline, as announced
    withdrawn: set[SlaKind] = field(default_factory=set)
    revisit: Revisit | None = None
    cancel_reason: str | None = None
    last_step_at: datetime | None = None  # SLA announcements are not steps: a late sync may precede them
    history: list[tuple[str, datetime]] = field(default_factory=list)

    stream_type: ClassVar[str] = "job"

    # --- creation (a reaction to a triage: stamped with the triage's time) ------------------------------

    @classmethod
    def create(
        cls,
        request: RequestFacts,
        mode: ServiceMode,
        priority: Priority,
        sla: SlaPolicy,
        at: datetime,
        assignee: Assignee | None,
        arrive_sla_from: datetime | None = None,
    ) -> Job:
        """`arrive_sla_from`: when the arrive SLA starts, if not at the request's receipt (paid service: at the
        customer's acceptance of the quote, as intake says in `service_request.cleared_for_dispatch`)."""
        if mode == ServiceMode.phone:
            raise RuleViolation("a request resolved by phone has no job", field="mode")
        job = cls(id=job_id_for(request.request_id))
        job.record(
            JobCreated(
                job_id=job.id,
                request_id=request.request_id,
                mode=mode,
                priority=priority,
                region=request.region,
                product_line=request.product_line,
                dealer_id=request.dealer_id,
                accept_due=sla.accept_due(priority, at) if assignee else None,
                arrive_due=sla.arrive_due(priority, arrive_sla_from or request.received_at),
            ),
            at,
        )
        if assignee is not None:
            job.assign(assignee, AssignedBy.auto, sla, at)
        return job

    # --- commands ---------------------------------------------------------------------------------------

    def assign(self, assignee: Assignee, by: AssignedBy, sla: SlaPolicy, at: datetime) -> None:
        """Manual or automatic; a re-assignment is allowed until the job is accepted and keeps the accept
        deadline of the first assignment."""
        if self.status not in (JobStatus.unassigned, JobStatus.assigned):
            reason = (
                "re-assignment is allowed only until the job is accepted"
                if self.status in LOAD_STATUSES
                else f"the job is {self.status}"
            )
            raise InvalidTransition(f"cannot assign job {self.id}: {reason}", current_status=str(self.status))
        if not assignee.active:
            raise RuleViolation(f"technician {assignee.technician_id} is inactive", field="technician_id")
        if self.product_line not in assignee.skills:
            raise RuleViolation(
                f"technician {assignee.technician_id} has no skill for product line {self.product_line!r}",
                field="technician_id",
            )
        if assignee.technician_id == self.technician_id:
            return  # already theirs: nothing happened
        self.record(
            JobAssigned(
                job_id=self.id,
                request_id=self.request_id,
                center_id=assignee.center_id,
                technician_id=assignee.technician_id,
                by=by,
                accept_due=self.accept_due or sla.accept_due(self.priority, at),
                previous_technician_id=self.technician_id,
            ),
            at,
        )

    def accept(self, technician: str | None, at: datetime) -> None:
        """`technician`: the acting technician, or None for a dispatcher recording it on their behalf."""
        self._check_actor(technician)
        self._require(JobStatus.assigned, action="accept")
        self._step(
            SlaKind.accept,
            JobAccepted(job_id=self.id, request_id=self.request_id, technician_id=self.technician_id),
            at,
        )

    def arrive(self, technician: str | None, at: datetime) -> None:
        """Service starts: on site, or the unit is checked in. Again after a visit that did not fix it."""
        self._check_actor(technician)
        self._require(
            JobStatus.accepted,
            JobStatus.repeat_visit_needed,
            action="arrive at",
            hint="accept it first" if self.status == JobStatus.assigned else None,
        )
        self._step(
            SlaKind.arrive, JobArrived(job_id=self.id, request_id=self.request_id, technician_id=self.technician_id), at
        )

    def complete(
        self,
        technician: str | None,
        fixed: bool,
        resolution: str | None,
        at: datetime,
        reason: VisitFailureReason | None = None,
    ) -> None:
        """A visit ends; `reason` says why one that did not fix the unit failed (`unspecified` by default)."""
        if fixed and reason is not None:
            raise RuleViolation(
                "a reason is given only for a visit that did not fix the unit (fixed=false)", field="reason"
            )
        self._check_actor(technician)
        self._require(
            JobStatus.in_service,
            action="complete",
            hint="arrive first" if self.status in (JobStatus.accepted, JobStatus.repeat_visit_needed) else None,
        )
        self.record(
            JobCompleted(
                job_id=self.id,
                request_id=self.request_id,
                technician_id=self.technician_id,
                fixed=fixed,
                resolution=resolution,
                reason=None if fixed else reason or VisitFailureReason.unspecified,
            ),
            at,
        )

    def record_revisit(
        self, satisfaction: int, nps: int | None, channel: RevisitChannel, comment: str | None, at: datetime
    ) -> None:
        """The follow-up contact, once, after the job was completed fixed."""
        if not 1 <= satisfaction <= 5:
            raise RuleViolation("satisfaction must be between 1 and 5", field="satisfaction")
        if nps is not None and not 0 <= nps <= 10:
            raise RuleViolation("nps must be between 0 and 10", field="nps")
        self._require(
            JobStatus.completed,
            action="record a revisit for",
            hint="the job is not fixed yet" if self.status == JobStatus.repeat_visit_needed else None,
        )
        self.record(
            RevisitDone(
                job_id=self.id,
                request_id=self.request_id,
                satisfaction=satisfaction,
                nps=nps,
                channel=channel,
                comment=comment,
            ),
            at,
        )

    # --- reactions (no-ops when the fact is already reflected) ------------------------------------------

    def note_request_cancelled(self, reason: str, at: datetime) -> None:
        if self.status in OPEN_STATUSES:
            self.record(JobCancelled(job_id=self.id, request_id=self.request_id, reason=reason), at)

    def note_deadline_passed(self, kind: SlaKind, now: datetime) -> None:
        """The live timer: announce the breach when the step is still missing at its deadline."""
        due = self.pending_deadlines()[kind]
        if due is not None and now >= due:
            self.record(JobSlaBreached(job_id=self.id, request_id=self.request_id, kind=kind, due=due), due)

    # --- SLA ----------------------------------------------------------------------------------------------

    def due(self, kind: SlaKind) -> datetime | None:
        return self.accept_due if kind == SlaKind.accept else self.arrive_due

    def done_at(self, kind: SlaKind) -> datetime | None:
        return self.accepted_at if kind == SlaKind.accept else self.arrived_at

    def is_breached(self, kind: SlaKind) -> bool:
        return kind in self.breaches and kind not in self.withdrawn

    def pending_deadlines(self) -> dict[SlaKind, datetime | None]:
        """The deadline a live timer should watch, per kind (None: nothing left to watch)."""
        watched = {}
        for kind in SlaKind:
            due = self.due(kind)
            waiting = self.status != JobStatus.cancelled and self.done_at(kind) is None and kind not in self.breaches
            watched[kind] = due if waiting else None
        return watched

    def due_deadlines(self) -> dict[str, datetime]:
        """The SLA deadlines a live timer watches, as the unit of work reconciles them."""
        return {kind.value: due for kind, due in self.pending_deadlines().items() if due is not None}

    @property
    def previous_step_at(self) -> datetime | None:
        return self.last_step_at

    def _step(self, kind: SlaKind, step: EventData, at: datetime) -> None:
        """Record an accept or arrive step and what it proves about its SLA (only the first one counts)."""
        due = self.due(kind)
        first = self.done_at(kind) is None
        if first and due is not None and is_late(at, due) and kind not in self.breaches:
            self.record(JobSlaBreached(job_id=self.id, request_id=self.request_id, kind=kind, due=due), due)
        self.record(step, at)
        if first and due is not None and not is_late(at, due) and self.is_breached(kind):
            # Stamped like the breach it withdraws, so both fall into the same reporting window.
            self.record(JobSlaBreachWithdrawn(job_id=self.id, request_id=self.request_id, kind=kind, due=due), due)

    # --- state ----------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def next_due(self) -> datetime | None:
        """When the next step is due, for a technician's queue (missed deadlines still count: most urgent)."""
        if self.status == JobStatus.assigned:
            return min(d for d in (self.accept_due, self.arrive_due) if d is not None)
        if self.status == JobStatus.accepted:
            return self.arrive_due
        return None

    def _check_actor(self, technician: str | None) -> None:
        if technician is not None and technician != self.technician_id:
            raise Forbidden(f"job {self.id} is not assigned to technician {technician}")

    def _require(self, *allowed: JobStatus, action: str, hint: str | None = None) -> None:
        if self.status not in allowed:
            refused = f"cannot {action} a job that is {self.status}" + (f" ({hint})" if hint else "")
            raise transition_refused(self.status, allowed, refused, label="allowed from")

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        self.history.append((data.event_type, occurred_at))
        if not isinstance(data, (JobSlaBreached, JobSlaBreachWithdrawn)):
            self.last_step_at = max(self.last_step_at, occurred_at) if self.last_step_at else occurred_at
        match data:
            case JobCreated():
                self.request_id, self.mode, self.priority = data.request_id, data.mode, data.priority
                self.region, self.product_line, self.dealer_id = data.region, data.product_line, data.dealer_id
                self.accept_due, self.arrive_due = data.accept_due, data.arrive_due
                self.created_at = occurred_at
            case JobAssigned():
                self.status = JobStatus.assigned
                self.technician_id, self.center_id = data.technician_id, data.center_id
                self.accept_due = self.accept_due or data.accept_due
            case JobAccepted():
                self.status = JobStatus.accepted
                self.accepted_at = self.accepted_at or occurred_at
            case JobArrived():
                self.status = JobStatus.in_service
                self.arrived_at = self.arrived_at or occurred_at
                self.visits.append(Visit(data.technician_id, occurred_at))
            case JobCompleted():
                self.status = JobStatus.completed if data.fixed else JobStatus.repeat_visit_needed
                if self.visits:
                    visit = self.visits[-1]
                    visit.completed_at, visit.fixed, visit.resolution = occurred_at, data.fixed, data.resolution
                    visit.reason = data.reason
                if data.fixed and self.completed_at is None:
                    self.completed_at = occurred_at
            case RevisitDone():
                self.status = JobStatus.revisited
                self.revisit = Revisit(data.satisfaction, data.nps, data.channel, data.comment, occurred_at)
            case JobCancelled():
                self.status = JobStatus.cancelled
                self.cancel_reason = data.reason
            case JobSlaBreached():
                self.breaches.setdefault(data.kind, data.due)
            case JobSlaBreachWithdrawn():
                self.withdrawn.add(data.kind)
