"""Warranty's aggregates, folded from their events: the unit (its sale, swaps, repairs, entitlement, return),
a product line's policy, and the coverage check of a received request. Pure: no web, database or Kafka.

**The two-repair rule (三包).** A unit repaired twice within warranty for the same fault that fails again is
entitled to exchange or return. Here, from the unit's own stream:
- a *fault* is a part category (`compressor`, `pump`, ...): the *same fault* means a swap of the same category;
- a *repair* of fault C is a job that swapped a part of category C while C was covered (a covered swap) and
  that dispatch completed with `fixed=true` (warranty keeps it as `unit.repair_recorded`);
- it *fails again* when, after the second such repair was completed, a third job swaps a covered part of C.
Then `unit.exchange_entitled` is recorded once, naming the fault and the jobs. Billable swaps (out of warranty
or excluded wear parts) and repairs without a swap count for nothing: they are not repairs under warranty of
a known fault."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from services.warranty.coverage import Policy, PolicyBook, Sale, Verdict, policy_from
from shared.contracts.base import EventData
from shared.contracts.warranty import (
    CoverageBasis,
    PartCondition,
    PartReturned,
    PartSwapped,
    ProductRegistered,
    ReturnKind,
    ReturnRejected,
    UnitExchanged,
    UnitExchangeEntitled,
    UnitRepairRecorded,
    UnitReturned,
    WarrantyChecked,
    WarrantyPolicySet,
)
from shared.domain import Aggregate, Conflict, Namespaced, RuleViolation


@dataclass(frozen=True)
class ReturnLimits:
    """Statutory 三包 defaults: return within 7 days of sale, exchange within 15 (configurable)."""

    return_days: int = 7
    exchange_days: int = 15


@dataclass(frozen=True)
class SwapFact:
    swap_id: str
    job_id: str
    category: str
    covered: bool
    at: datetime


@dataclass(frozen=True)
class Entitlement:
    fault_category: str
    repair_job_ids: tuple[str, str]
    failure_job_id: str
    failed_at: datetime | None = None  # when the fault came back: the entitlement's business time

    def describe(self) -> str:
        first, second = self.repair_job_ids
        return (
            f"repaired twice within warranty for the same fault (part category {self.fault_category}: jobs "
            f"{first} and {second}, both completed fixed) and it failed again (job {self.failure_job_id})"
        )


def two_repair_entitlement(swaps: list[SwapFact], repaired_at: dict[str, datetime]) -> Entitlement | None:
    """The first fault (by category name) that was repaired twice under warranty and came back, if any."""
    for category in sorted({s.category for s in swaps if s.covered}):
        covered = [s for s in swaps if s.covered and s.category == category]
        repairs = sorted({(repaired_at[s.job_id], s.job_id) for s in covered if s.job_id in repaired_at})
        if len(repairs) < 2:
            continue
        (_, first), (second_done, second) = repairs[0], repairs[1]
        again = sorted((s.at, s.job_id) for s in covered if s.job_id not in (first, second) and s.at > second_done)
        if again:
            failed_at, failure = again[0]
            return Entitlement(category, (first, second), failure, failed_at)
    return None


@dataclass(frozen=True)
class ReturnDecision:
    accepted: bool
    basis: str
    reasons: tuple[str, ...]
    remedy: str
    days_since_sale: int


def decide_return(
    kind: ReturnKind, sold_on: date, on: date, limits: ReturnLimits, entitlement: Entitlement | None
) -> ReturnDecision:
    """Return within `return_days` days of sale, exchange within `exchange_days`, otherwise repair, unless the
    two-repair rule entitles the unit. Day 0 is the sale date, so with 7 days a unit sold on the 1st may be
    returned through the 8th."""
    if on < sold_on:
        raise RuleViolation(
            f"the return date {on.isoformat()} is before the sale on {sold_on.isoformat()}", field="occurred_at"
        )
    days = (on - sold_on).days
    window = limits.return_days if kind == ReturnKind.return_ else limits.exchange_days
    if days <= window:
        why = f"{kind.value} requested {days} day(s) after the sale on {sold_on.isoformat()}, within {window}"
        return ReturnDecision(True, f"within_{kind.value}_days", (why,), "", days)
    if entitlement is not None:
        return ReturnDecision(True, "two_repair_rule", (entitlement.describe(),), "", days)
    reasons = [
        f"{kind.value} window of {window} days after the sale on {sold_on.isoformat()} has passed ({days} days)",
        "the unit has no two-repair entitlement",
    ]
    remedy = "exchange" if kind == ReturnKind.return_ and days <= limits.exchange_days else "repair"
    return ReturnDecision(False, "", tuple(reasons), remedy, days)


@dataclass
class Unit(Namespaced, Aggregate):
    """One physical unit by serial (stream `product:<serial>`). It may exist before its sale is registered (a
    swap on an unregistered unit, judged from the request's purchase date); registering it later is allowed once."""

    stream_type = "unit"
    namespace = "product"

    @property
    def serial(self) -> str:
        return self.business_id

    registered: bool = False
    model: str | None = None
    product_line: str | None = None
    sold_on: date | None = None
    dealer_id: str | None = None
    swaps: list[SwapFact] = field(default_factory=list)
    repaired_at: dict[str, datetime] = field(default_factory=dict)
    entitlement: Entitlement | None = None
    outcome: str | None = None  # returned | exchanged
    swapped: dict[str, PartSwapped] = field(default_factory=dict)  # swap id → the swap, for part returns
    part_returns: dict[str, str] = field(default_factory=dict)  # swap id → return id
    swapped_at: dict[str, datetime] = field(default_factory=dict)  # swap id → when (a return is not before it)

    # --- commands -------------------------------------------------------------------------------------

    def register(self, model: str, product_line: str, sold_on: date, dealer_id: str | None, at: datetime) -> None:
        if self.registered:
            raise Conflict(f"serial {self.serial} is already registered (sold on {self.sold_on})", field="serial")
        if sold_on > at.date():
            raise RuleViolation(f"sold_on {sold_on.isoformat()} is in the future", field="sold_on")
        self.record(
            ProductRegistered(
                serial=self.serial, model=model, product_line=product_line, sold_on=sold_on, dealer_id=dealer_id
            ),
            at,
        )

    def swap_part(self, swap: PartSwapped, at: datetime) -> None:
        if any(s.swap_id == swap.swap_id for s in self.swaps):
            raise Conflict(f"swap {swap.swap_id} is already recorded", field="swap_id")
        self.record(swap, at)
        self._establish_entitlement()

    def return_part(
        self, return_id: str, swap_id: str, old_part_serial: str, condition: PartCondition, by: str, at: datetime
    ) -> PartReturned:
        """The old part of one of this unit's swaps came back (once per swap; the serial the swap recorded)."""
        swap = self.swapped.get(swap_id)
        if swap is None:
            raise RuleViolation(f"swap {swap_id} is not a swap of unit {self.serial}", field="swap_id")
        if swap_id in self.part_returns:
            raise Conflict(
                f"the old part of swap {swap_id} was returned already ({self.part_returns[swap_id]})",
                field="swap_id",
                existing_id=self.part_returns[swap_id],
            )
        if swap.old_part_serial is not None and swap.old_part_serial != old_part_serial:
            raise RuleViolation(
                f"swap {swap_id} took out part serial {swap.old_part_serial}, not {old_part_serial}",
                field="old_part_serial",
            )
        returned = PartReturned(
            return_id=return_id,
            swap_id=swap_id,
            job_id=swap.job_id,
            request_id=swap.request_id,
            serial=self.serial,
            part_number=swap.part_number,
            part_category=swap.part_category,
            old_part_serial=old_part_serial,
            condition=condition,
            dealer_id=swap.dealer_id,
            returned_by=by,
        )
        self.record(returned, at)
        return returned

    def request_return(
        self, return_id: str, kind: ReturnKind, reason: str, at: datetime, limits: ReturnLimits, requested_by: str
    ) -> ReturnDecision:
        if not self.registered or self.sold_on is None:
            raise RuleViolation(f"serial {self.serial} has no registered sale to count the days from", field="serial")
        if self.outcome is not None:
            raise Conflict(f"serial {self.serial} was already {self.outcome}", field="serial")
        decision = decide_return(kind, self.sold_on, at.date(), limits, self.entitlement)
        if not decision.accepted:
            self.record(
                ReturnRejected(
                    return_id=return_id,
                    serial=self.serial,
                    kind=kind,
                    reason=reason,
                    reasons=list(decision.reasons),
                    remedy=decision.remedy,
                    days_since_sale=decision.days_since_sale,
                    requested_by=requested_by,
                ),
                at,
            )
        else:  # a return and an exchange granted record the same facts
            granted = UnitReturned if kind == ReturnKind.return_ else UnitExchanged
            self.record(
                granted(
                    return_id=return_id,
                    serial=self.serial,
                    reason=reason,
                    basis=decision.basis,
                    days_since_sale=decision.days_since_sale,
                    requested_by=requested_by,
                ),
                at,
            )
        return decision

    # --- reactions (idempotent: a fact already reflected changes nothing) ------------------------------

    def note_repair(
        self, job_id: str, request_id: str, technician_id: str | None, dealer_id: str | None, at: datetime
    ) -> None:
        """A job for this unit was completed fixed: keep the repair record, then apply the two-repair rule."""
        if job_id in self.repaired_at:
            return
        self.record(
            UnitRepairRecorded(
                serial=self.serial,
                job_id=job_id,
                request_id=request_id,
                technician_id=technician_id,
                dealer_id=dealer_id,
            ),
            at,
        )
        self._establish_entitlement()

    def _establish_entitlement(self) -> None:
        """Stamped with the time the fault came back, whichever fact (swap or repair record) arrived last."""
        if self.entitlement is not None or self.outcome is not None:
            return
        found = two_repair_entitlement(self.swaps, self.repaired_at)
        if found is not None and found.failed_at is not None:
            self.record(
                UnitExchangeEntitled(
                    serial=self.serial,
                    fault_category=found.fault_category,
                    repair_job_ids=list(found.repair_job_ids),
                    failure_job_id=found.failure_job_id,
                    reason=found.describe(),
                ),
                found.failed_at,
            )

    # --- state ----------------------------------------------------------------------------------------

    def sale(self) -> Sale | None:
        if not self.registered or self.sold_on is None:
            return None
        return Sale(self.serial, self.sold_on, CoverageBasis.registered_sale)

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        match data:
            case ProductRegistered():
                self.registered = True
                self.model, self.product_line = data.model, data.product_line
                self.sold_on, self.dealer_id = data.sold_on, data.dealer_id
            case PartSwapped():
                self.swaps.append(SwapFact(data.swap_id, data.job_id, data.part_category, data.covered, occurred_at))
                self.swapped[data.swap_id] = data
                self.swapped_at[data.swap_id] = occurred_at
            case PartReturned():
                self.part_returns[data.swap_id] = data.return_id
            case UnitRepairRecorded():
                self.repaired_at[data.job_id] = occurred_at
            case UnitExchangeEntitled():
                first, second = data.repair_job_ids[:2]
                self.entitlement = Entitlement(data.fault_category, (first, second), data.failure_job_id, occurred_at)
            case UnitReturned():
                self.outcome = "returned"
            case UnitExchanged():
                self.outcome = "exchanged"
            case ReturnRejected():
                pass


@dataclass
class ProductLinePolicy(Namespaced, Aggregate):
    """The policy versions of one product line (stream `policy:<product_line>`)."""

    stream_type = "warranty_policy"
    namespace = "policy"

    product_line: str | None = None
    versions: dict[date | None, Policy] = field(default_factory=dict)

    def set(
        self,
        product_line: str,
        months: int,
        part_months: dict[str, int],
        excluded: list[str],
        effective_from: date | None,
        at: datetime,
    ) -> None:
        policy = policy_from(product_line, months, part_months, excluded, effective_from)
        overlap = set(policy.part_months) & policy.excluded_categories
        if overlap:
            raise RuleViolation(
                f"categories both excluded and given months: {', '.join(sorted(overlap))}", field="excluded_categories"
            )
        self.record(
            WarrantyPolicySet(
                product_line=product_line,
                months=months,
                part_months=dict(policy.part_months),
                excluded_categories=sorted(policy.excluded_categories),
                effective_from=effective_from,
            ),
            at,
        )

    def book(self, product_line: str, default_months: int) -> PolicyBook:
        return PolicyBook(product_line, tuple(self.versions.values()), default_months)

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        if isinstance(data, WarrantyPolicySet):
            self.product_line = data.product_line
            # A version for the same effective date replaces the earlier one.
            self.versions[data.effective_from] = policy_from(
                data.product_line, data.months, data.part_months, data.excluded_categories, data.effective_from
            )


@dataclass
class CoverageCheck(Namespaced, Aggregate):
    """The coverage verdict of one received request (stream `coverage:<request id>`)."""

    stream_type = "coverage_check"
    namespace = "coverage"

    checked: bool = False

    def note_received(self, serial: str, verdict: Verdict, judged_on: date, at: datetime) -> None:
        if self.checked:
            return
        self.record(
            WarrantyChecked(
                request_id=self.business_id,
                serial=serial,
                covered=verdict.covered,
                expires_on=verdict.expires_on,
                reason=verdict.reason,
                basis=verdict.basis,
                judged_on=judged_on,
            ),
            at,
        )

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        if isinstance(data, WarrantyChecked):
            self.checked = True
