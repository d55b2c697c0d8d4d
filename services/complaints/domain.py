"""The complaint aggregate, folded from its events. Pure: no web, database or Kafka here.

A complaint goes open -> acknowledged (<-> waiting_on_customer) -> resolved -> closed. A resolved complaint
may be reopened; a closed one may be appealed, which reopens it one level up. Each opening or reopening
starts a *round* with its own deadlines (sla.py). When a deadline passes without its step, the live timer
calls `deadline_passed` and the complaint escalates one level, once, stamped with the deadline. A step that
syncs late and shows the deadline was met after all (or a pause that moved it) withdraws that escalation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.complaints.sla import ComplaintSla
from shared.calendar import Pause
from shared.clock import rfc3339
from shared.contracts.base import EventData
from shared.contracts.complaints import (
    ComplaintAcknowledged,
    ComplaintCategory,
    ComplaintClosed,
    ComplaintCustomerResponded,
    ComplaintDeadline,
    ComplaintEscalated,
    ComplaintEscalationWithdrawn,
    ComplaintLinkAwaited,
    ComplaintLinked,
    ComplaintLinkUnresolved,
    ComplaintOpened,
    ComplaintReopened,
    ComplaintResolved,
    ComplaintSeverity,
    ComplaintSource,
    ComplaintWaitingOnCustomer,
    EscalationTrigger,
)
from shared.domain import Aggregate, InvalidTransition, transition_refused


class Status(StrEnum):
    open = "open"  # waiting to be acknowledged
    acknowledged = "acknowledged"
    waiting_on_customer = "waiting_on_customer"
    resolved = "resolved"
    closed = "closed"


ACTIVE = (Status.open, Status.acknowledged, Status.waiting_on_customer)
LINK_DEADLINE = "link"


class Link(StrEnum):
    """Whether the request or job the complaint names is confirmed (None: it named none, or a known one)."""

    awaited = "awaited"
    linked = "linked"
    unresolved = "unresolved"


TOP_LEVEL = 3
_REVISIT_COMPLAINTS = uuid.UUID("5b0c8a53-3f5e-4b8e-9d0a-6f1c2e7d4a91")


def revisit_complaint_id(job_id: str) -> str:
    """The id of the one complaint a low revisit of `job_id` opens, however often the revisit arrives."""
    return str(uuid.uuid5(_REVISIT_COMPLAINTS, f"revisit:{job_id}"))


@dataclass
class TimerEscalation:
    """An escalation the live timer made for one deadline of one round; void once withdrawn."""

    deadline: ComplaintDeadline
    round: int
    due: datetime
    withdrawn: bool = False


@dataclass
class Complaint(Aggregate):
    stream_type = "complaint"

    status: Status | None = None
    level: int = 1
    category: ComplaintCategory | None = None
    severity: ComplaintSeverity = ComplaintSeverity.general
    source: ComplaintSource | None = None
    details: str = ""
    request_id: str | None = None
    job_id: str | None = None
    dealer_id: str | None = None
    satisfaction: int | None = None
    opened_at: datetime | None = None
    round: int = 0
    round_started_at: datetime | None = None
    ack_due: datetime | None = None
    acknowledged_at: datetime | None = None
    resolve_due: datetime | None = None  # None while the clock stands still before reaching it
    resolved_at: datetime | None = None
    resolution: str | None = None
    pauses: list[Pause] = field(default_factory=list)  # waits on the customer in this round
    closed_at: datetime | None = None
    customer_confirmed: bool | None = None
    reopen_count: int = 0
    appeal_count: int = 0
    timer_escalations: list[TimerEscalation] = field(default_factory=list)
    link: Link | None = None
    link_until: datetime | None = None
    last_step_at: datetime | None = None  # the latest business step; the timer's guesses are not steps
    history: list[tuple[str, datetime]] = field(default_factory=list)

    # --- commands -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        complaint_id: str,
        *,
        request_id: str | None,
        job_id: str | None,
        dealer_id: str | None,
        category: ComplaintCategory,
        severity: ComplaintSeverity,
        source: ComplaintSource,
        details: str,
        at: datetime,
        sla: ComplaintSla,
        satisfaction: int | None = None,
    ) -> Complaint:
        complaint = cls(id=complaint_id)
        complaint.record(
            ComplaintOpened(
                complaint_id=complaint_id,
                request_id=request_id,
                job_id=job_id,
                dealer_id=dealer_id,
                category=category,
                severity=severity,
                source=source,
                details=details,
                level=1,
                ack_due=sla.acknowledge_due(at),
                resolve_due=sla.resolve_due(severity, at),
                satisfaction=satisfaction,
            ),
            at,
        )
        return complaint

    @classmethod
    def open_from_revisit(
        cls,
        *,
        job_id: str,
        request_id: str,
        dealer_id: str | None,
        satisfaction: int,
        channel: str,
        comment: str | None,
        at: datetime,
        sla: ComplaintSla,
    ) -> Complaint:
        """A low score at the follow-up is a complaint of its own: general, category other (the score
        does not say what went wrong; the comment may)."""
        details = f"Satisfaction {satisfaction}/5 at the follow-up ({channel})" + (f": {comment}" if comment else "")
        return cls.open(
            revisit_complaint_id(job_id),
            request_id=request_id,
            job_id=job_id,
            dealer_id=dealer_id,
            category=ComplaintCategory.other,
            severity=ComplaintSeverity.general,
            source=ComplaintSource.revisit,
            details=details,
            at=at,
            sla=sla,
            satisfaction=satisfaction,
        )

    def await_link(self, until: datetime, at: datetime) -> None:
        """The request or job named is not known yet: wait for it until `until`."""
        self.record(ComplaintLinkAwaited(**self._about(), until=until), at)

    def confirm_link(self, request_id: str, dealer_id: str | None, at: datetime) -> None:
        if self.link in (Link.awaited, Link.unresolved):
            self.record(
                ComplaintLinked(complaint_id=self.id, request_id=request_id, job_id=self.job_id, dealer_id=dealer_id),
                at,
            )

    def acknowledge(self, note: str | None, at: datetime) -> None:
        self._require(Status.open, doing="acknowledging")
        self.record(ComplaintAcknowledged(**self._about(), note=note), at)
        self._withdraw_disproved_escalations()

    def escalate(self, reason: str, at: datetime) -> None:
        self._require(*ACTIVE, doing="escalating")
        if self.level >= TOP_LEVEL:
            raise InvalidTransition(
                f"the complaint is already at level {TOP_LEVEL}, the highest",
                current_status=str(self.status),
                level=self.level,
            )
        self.record(
            ComplaintEscalated(**self._about(), level=self.level + 1, trigger=EscalationTrigger.manual, reason=reason),
            at,
        )

    def wait_on_customer(self, reason: str, at: datetime, sla: ComplaintSla) -> None:
        self._require(Status.acknowledged, doing="waiting on the customer")
        due = sla.resolve_due(self.severity, self.round_started_at, [*self.pauses, (at, None)])
        self.record(ComplaintWaitingOnCustomer(**self._about(), reason=reason, resolve_due=due), at)
        self._withdraw_disproved_escalations()

    def record_customer_response(self, note: str | None, at: datetime, sla: ComplaintSla) -> None:
        self._require(Status.waiting_on_customer, doing="recording the customer's response")
        waited_since = self.pauses[-1][0]
        due = sla.resolve_due(self.severity, self.round_started_at, [*self.pauses[:-1], (waited_since, at)])
        self.record(ComplaintCustomerResponded(**self._about(), note=note, resolve_due=due), at)
        self._withdraw_disproved_escalations()

    def resolve(self, resolution: str, at: datetime) -> None:
        """Resolving an unacknowledged complaint acknowledges it at the same moment: the customer has had
        an answer."""
        self._require(*ACTIVE, doing="resolving")
        if self.status == Status.open:
            self.record(ComplaintAcknowledged(**self._about(), note="acknowledged by its resolution"), at)
        self.record(ComplaintResolved(**self._about(), resolution=resolution), at)
        self._withdraw_disproved_escalations()

    def reopen(self, reason: str, at: datetime, sla: ComplaintSla) -> None:
        """Resolved: taken up again at the same level. Closed: an appeal, one level up (level 3 stays 3)."""
        self._require(Status.resolved, Status.closed, doing="reopening")
        appeal = self.status == Status.closed
        level = min(TOP_LEVEL, self.level + 1) if appeal else self.level
        self.record(
            ComplaintReopened(
                **self._about(),
                reason=reason,
                appeal=appeal,
                level=level,
                ack_due=sla.acknowledge_due(at),
                resolve_due=sla.resolve_due(self.severity, at),
            ),
            at,
        )

    def close(self, customer_confirmed: bool, at: datetime) -> None:
        if self.status in ACTIVE:
            raise InvalidTransition(
                "a complaint is closed only once it is resolved, and this one has no resolution yet",
                current_status=str(self.status),
            )
        self._require(Status.resolved, doing="closing")
        self.record(ComplaintClosed(**self._about(), customer_confirmed=customer_confirmed), at)

    # --- the live timer -------------------------------------------------------------------------------

    def pending_deadlines(self) -> dict[str, datetime]:
        """The deadlines the timer must watch now, by kind: a kind names one arming of one deadline of one
        round, so that a name once cancelled or fired is never needed again."""
        if self.status not in ACTIVE:
            return {}
        pending = {}
        if self.acknowledged_at is None:
            pending[self._acknowledge_kind] = self.ack_due
        if self.resolve_due is not None:
            pending[self._resolve_kind] = self.resolve_due
        return pending

    def timer_deadlines(self) -> dict[str, datetime]:
        """What the timer watches: the SLA deadlines, and the end of the grace period of an awaited link
        (whatever the complaint's status)."""
        deadlines = self.pending_deadlines()
        if self.link == Link.awaited:
            deadlines[LINK_DEADLINE] = self.link_until
        return deadlines

    @property
    def previous_step_at(self) -> datetime | None:
        return self.last_step_at

    def due_deadlines(self) -> dict[str, datetime]:
        """The timer's deadlines, as the unit of work reconciles them (`shared.kernel.HasDeadlines`)."""
        return self.timer_deadlines()

    def deadline_passed(self, kind: str) -> None:
        """The timer says deadline `kind` passed: escalate one level if it is still pending and was not
        escalated for yet. At level 3 there is nowhere to go; the miss shows in the step times. The link
        deadline flags a link still awaited."""
        if kind == LINK_DEADLINE:
            if self.link == Link.awaited:
                self.record(
                    ComplaintLinkUnresolved(
                        **self._about(), until=self.link_until, reason="no such service request or job arrived in time"
                    ),
                    self.link_until,
                )
            return
        due = self.pending_deadlines().get(kind)
        if due is None or self.level >= TOP_LEVEL:
            return
        deadline = ComplaintDeadline.acknowledge if kind == self._acknowledge_kind else ComplaintDeadline.resolve
        if any(e.round == self.round and e.deadline == deadline and not e.withdrawn for e in self.timer_escalations):
            return  # this round's miss of this deadline is escalated already (its deadline re-armed after a wait)
        if deadline == ComplaintDeadline.acknowledge:
            trigger, reason = EscalationTrigger.acknowledge_overdue, f"not acknowledged by {rfc3339(due)}"
        else:
            trigger, reason = EscalationTrigger.resolve_overdue, f"not resolved by {rfc3339(due)}"
        self.record(
            ComplaintEscalated(**self._about(), level=self.level + 1, trigger=trigger, reason=reason, due=due), due
        )

    @property
    def _acknowledge_kind(self) -> str:
        return f"acknowledge.{self.round}"

    @property
    def _resolve_kind(self) -> str:
        # Each wait on the customer disarms the resolution deadline and the response arms it again, under a
        # fresh name: the scheduler never revives a deadline once it was cancelled or has fired.
        resumed = sum(1 for _, end in self.pauses if end is not None)
        return f"resolve.{self.round}.{resumed}"

    def _withdraw_disproved_escalations(self) -> None:
        for escalation in list(self.timer_escalations):
            if escalation.withdrawn or escalation.round != self.round:
                continue
            reason = self._disproof(escalation)
            if reason:
                self.record(
                    ComplaintEscalationWithdrawn(
                        **self._about(),
                        level=max(1, self.level - 1),
                        deadline=escalation.deadline,
                        due=escalation.due,
                        reason=reason,
                    ),
                    escalation.due,
                )

    def _disproof(self, escalation: TimerEscalation) -> str | None:
        """Why the step times now show that `escalation` should not have happened, if they do."""
        if escalation.deadline == ComplaintDeadline.acknowledge:
            if self.acknowledged_at is not None and self.acknowledged_at <= self.ack_due:
                return f"acknowledged at {rfc3339(self.acknowledged_at)}, within the deadline"
            return None
        if self.resolve_due is None or self.resolve_due > escalation.due:
            return "waiting on the customer moved the resolution deadline"
        if self.resolved_at is not None and self.resolved_at <= self.resolve_due:
            return f"resolved at {rfc3339(self.resolved_at)}, within the deadline"
        return None

    # --- state ----------------------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def next_due(self) -> datetime | None:
        """The earliest deadline still to be met (None when none runs)."""
        return min(self.pending_deadlines().values(), default=None)

    @property
    def waiting_since(self) -> datetime | None:
        return self.pauses[-1][0] if self.status == Status.waiting_on_customer else None

    @property
    def acknowledged_in_time(self) -> bool | None:
        """Whether this round's acknowledgement met its deadline (None until acknowledged)."""
        return None if self.acknowledged_at is None else self.acknowledged_at <= self.ack_due

    @property
    def resolved_in_time(self) -> bool | None:
        if self.resolved_at is None:
            return None
        return self.resolve_due is None or self.resolved_at <= self.resolve_due

    def _about(self) -> dict[str, str | None]:
        return {"complaint_id": self.id, "request_id": self.request_id, "job_id": self.job_id}

    def _require(self, *allowed: Status, doing: str) -> None:
        if self.status not in allowed:
            refused = f"{doing} is not allowed for a complaint that is {self.status}"
            raise transition_refused(self.status, allowed, refused, label="allowed when")

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        self.history.append((data.event_type, occurred_at))
        if not _is_timer_guess(data):
            self.last_step_at = max(self.last_step_at or occurred_at, occurred_at)
        match data:
            case ComplaintOpened():
                self.status, self.level, self.round = Status.open, data.level, 1
                self.category, self.severity, self.source = data.category, data.severity, data.source
                self.details, self.satisfaction = data.details, data.satisfaction
                self.request_id, self.job_id, self.dealer_id = data.request_id, data.job_id, data.dealer_id
                self.opened_at = self.round_started_at = occurred_at
                self.ack_due, self.resolve_due = data.ack_due, data.resolve_due
            case ComplaintAcknowledged():
                self.status, self.acknowledged_at = Status.acknowledged, occurred_at
            case ComplaintEscalated():
                self.level = data.level
                if data.trigger != EscalationTrigger.manual:
                    overdue_ack = data.trigger == EscalationTrigger.acknowledge_overdue
                    self.timer_escalations.append(
                        TimerEscalation(
                            deadline=ComplaintDeadline.acknowledge if overdue_ack else ComplaintDeadline.resolve,
                            round=self.round,
                            due=data.due or occurred_at,
                        )
                    )
            case ComplaintEscalationWithdrawn():
                self.level = data.level
                for escalation in self.timer_escalations:
                    if (escalation.round, escalation.deadline, escalation.due, escalation.withdrawn) == (
                        self.round,
                        data.deadline,
                        data.due,
                        False,
                    ):
                        escalation.withdrawn = True
                        break
            case ComplaintWaitingOnCustomer():
                self.status, self.resolve_due = Status.waiting_on_customer, data.resolve_due
                self.pauses.append((occurred_at, None))
            case ComplaintCustomerResponded():
                self.status, self.resolve_due = Status.acknowledged, data.resolve_due
                self.pauses[-1] = (self.pauses[-1][0], occurred_at)
            case ComplaintResolved():
                self.status, self.resolved_at, self.resolution = Status.resolved, occurred_at, data.resolution
            case ComplaintReopened():
                self.status, self.level, self.round = Status.open, data.level, self.round + 1
                self.round_started_at, self.ack_due, self.resolve_due = occurred_at, data.ack_due, data.resolve_due
                self.acknowledged_at = self.resolved_at = self.resolution = self.closed_at = None
                self.customer_confirmed, self.pauses = None, []
                self.reopen_count += 1
                self.appeal_count += int(data.appeal)
            case ComplaintClosed():
                self.status, self.closed_at = Status.closed, occurred_at
                self.customer_confirmed = data.customer_confirmed
            case ComplaintLinkAwaited():
                self.link, self.link_until = Link.awaited, data.until
            case ComplaintLinked():
                self.link, self.request_id, self.dealer_id = Link.linked, data.request_id, data.dealer_id
            case ComplaintLinkUnresolved():
                self.link = Link.unresolved


def _is_timer_guess(data: EventData) -> bool:
    """The timer's escalations (and their withdrawals) are not steps: a step synced late may precede them. Nor
    is what happens to a link: it follows other services' events, not the complaint's handling."""
    if isinstance(data, (ComplaintEscalationWithdrawn, ComplaintLinkAwaited, ComplaintLinked, ComplaintLinkUnresolved)):
        return True
    return isinstance(data, ComplaintEscalated) and data.trigger != EscalationTrigger.manual
