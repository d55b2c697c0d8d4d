"""Dealer claims, pure: the adjudication rules, the money, and the claim aggregate.

A dealer claims a job's labour and the covered parts it swapped. The rules, each with its verdict in the
claim's `reasons`:
- `coverage_valid`: the unit was covered on the request's received date (the same judgement as
  `warranty.checked`: registered sale, else the request's purchase date);
- `swaps_belong_to_job`: every listed swap was recorded for this job (a billable swap may be listed; it is
  simply not paid);
- `filed_within_limit`: filed on or before the 30th day (configurable) after the job's last completion, in
  UTC dates: completed on the 1st → the 31st is the last day;
- `defective_part_returned`: every paid swap (covered, of this job) of a category in
  `RETURN_REQUIRED_CATEGORIES` has its old part returned (`part.returned`). Judged when the claim is filed, like
  the other rules: a claim already decided is not re-judged when the part comes back later (an officer may
  override it, with the return as the why).
"One claim per job" and "the job is completed" are checked before anything is written (409), since a second
claim or a claim for unfinished work is not something to adjudicate.

Money is Decimal, rounded half-up to the cent: labour = minutes × hourly rate / 60, parts = Σ quantity ×
unit cost over covered swaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from services.warranty.coverage import Verdict
from shared.contracts.base import EventData
from shared.contracts.warranty import ClaimApproved, ClaimReason, ClaimRejected, ClaimSubmitted
from shared.domain import Aggregate, InvalidTransition, Namespaced

CENT = Decimal("0.01")
RULES = "rules"


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class ClaimStatus(StrEnum):
    approved = "approved"
    rejected = "rejected"


@dataclass(frozen=True)
class SwapLine:
    """A swap listed on a claim, as warranty recorded it (job_id None: no such swap)."""

    swap_id: str
    job_id: str | None
    covered: bool = False
    quantity: int = 0
    unit_cost: Decimal = Decimal("0")
    category: str | None = None
    part_returned: bool = False

    @property
    def amount(self) -> Decimal:
        return money(self.unit_cost * self.quantity)


@dataclass(frozen=True)
class ClaimFacts:
    """What warranty knows about the claimed job when the claim is filed."""

    job_id: str
    request_id: str
    completed_at: datetime
    coverage: Verdict | None  # None: the job's request never reached warranty
    swaps: tuple[SwapLine, ...]
    return_required: frozenset[str] = frozenset()  # categories whose defective part must come back


def adjudicate(facts: ClaimFacts, filed_at: datetime, claim_days: int) -> list[ClaimReason]:
    """Every rule with its verdict; the claim is approved when all hold."""
    reasons = []
    if facts.coverage is None:
        reasons.append(
            ClaimReason(
                rule="coverage_valid",
                ok=False,
                detail=f"request {facts.request_id} of job {facts.job_id} is unknown to warranty",
            )
        )
    else:
        reasons.append(ClaimReason(rule="coverage_valid", ok=facts.coverage.covered, detail=facts.coverage.reason))
    foreign = [s.swap_id for s in facts.swaps if s.job_id != facts.job_id]
    reasons.append(
        ClaimReason(
            rule="swaps_belong_to_job",
            ok=not foreign,
            detail=f"swaps not recorded for job {facts.job_id}: {', '.join(foreign)}"
            if foreign
            else f"all {len(facts.swaps)} swap(s) were recorded for job {facts.job_id}",
        )
    )
    days = (filed_at.date() - facts.completed_at.date()).days
    completed = facts.completed_at.date().isoformat()
    reasons.append(
        ClaimReason(
            rule="filed_within_limit",
            ok=days <= claim_days,
            detail=f"filed {days} day(s) after the job's completion on {completed}; the limit is {claim_days}",
        )
    )
    reasons.append(defective_part_returned(facts))
    return reasons


def defective_part_returned(facts: ClaimFacts) -> ClaimReason:
    """Every covered swap of the job in a category whose defective part must come back has its return."""
    due = [s for s in facts.swaps if s.covered and s.job_id == facts.job_id and s.category in facts.return_required]
    missing = [s.swap_id for s in due if not s.part_returned]
    if missing:
        detail = f"the defective part of swap(s) {', '.join(missing)} has not come back"
    elif due:
        detail = f"the defective part of all {len(due)} swap(s) that must come back was returned"
    else:
        detail = "no claimed part is of a category whose defective part must come back"
    return ClaimReason(rule="defective_part_returned", ok=not missing, detail=detail)


@dataclass(frozen=True)
class Amounts:
    labour: Decimal
    parts: Decimal

    @property
    def total(self) -> Decimal:
        return self.labour + self.parts


def amounts(labour_minutes: int, hourly_rate: Decimal, swaps: tuple[SwapLine, ...], job_id: str) -> Amounts:
    """What the claim is worth if approved: labour, plus the covered parts of this job."""
    labour = money(Decimal(labour_minutes) * hourly_rate / 60)
    parts = sum((s.amount for s in swaps if s.covered and s.job_id == job_id), Decimal("0.00"))
    return Amounts(labour, money(parts))


@dataclass
class Decision:
    status: ClaimStatus
    reasons: list[ClaimReason]
    decided_by: str
    override: bool
    note: str | None
    at: datetime


@dataclass
class Claim(Namespaced, Aggregate):
    """A dealer's claim (stream `claim:<claim id>`)."""

    stream_type = "claim"
    namespace = "claim"

    submitted: ClaimSubmitted | None = None
    submitted_at: datetime | None = None
    decisions: list[Decision] = field(default_factory=list)

    @classmethod
    def submit(cls, submitted: ClaimSubmitted, reasons: list[ClaimReason], at: datetime) -> Claim:
        """File the claim and adjudicate it by the rules at once."""
        claim = cls.new(submitted.claim_id)
        claim.record(submitted, at)
        decided = ClaimApproved if all(r.ok for r in reasons) else ClaimRejected
        claim.record(
            decided(
                claim_id=claim.claim_id,
                job_id=submitted.job_id,
                dealer_id=submitted.dealer_id,
                reasons=reasons,
                decided_by=RULES,
                total_amount=submitted.total_amount,
            ),
            at,
        )
        return claim

    def override(self, approve: bool, officer: str, note: str, at: datetime) -> None:
        """A warranty officer's decision against the current one, recorded with who and why."""
        target = ClaimStatus.approved if approve else ClaimStatus.rejected
        if self.status == target:
            raise InvalidTransition(f"claim {self.claim_id} is already {target.value}", current_status=target.value)
        assert self.submitted is not None
        decided = ClaimApproved if approve else ClaimRejected
        self.record(
            decided(
                claim_id=self.claim_id,
                job_id=self.submitted.job_id,
                dealer_id=self.submitted.dealer_id,
                reasons=[ClaimReason(rule="officer_override", ok=approve, detail=note)],
                decided_by=officer,
                override=True,
                note=note,
                total_amount=self.submitted.total_amount,
            ),
            at,
        )

    @property
    def claim_id(self) -> str:
        return self.business_id

    @property
    def status(self) -> ClaimStatus | None:
        return self.decisions[-1].status if self.decisions else None

    @property
    def dealer_id(self) -> str | None:
        return self.submitted.dealer_id if self.submitted else None

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        match data:
            case ClaimSubmitted():
                self.submitted, self.submitted_at = data, occurred_at
            case ClaimApproved() | ClaimRejected():
                status = ClaimStatus.approved if isinstance(data, ClaimApproved) else ClaimStatus.rejected
                self.decisions.append(
                    Decision(status, list(data.reasons), data.decided_by, data.override, data.note, occurred_at)
                )
