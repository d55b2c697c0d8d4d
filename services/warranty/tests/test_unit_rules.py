"""The unit aggregate on its own, with fixed clocks: registration, returns and exchanges at their day
boundaries, and the two-repair rule from a unit's own history."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.warranty.domain import ReturnLimits, Unit, decide_return
from shared.contracts.warranty import PartSwapped, ReturnKind
from shared.domain import Conflict, RuleViolation

SOLD = date(2026, 3, 1)
T0 = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
LIMITS = ReturnLimits(return_days=7, exchange_days=15)


def sold_unit(sold_on: date = SOLD) -> Unit:
    unit = Unit(id="SN1")
    unit.register("T-100", "tractor", sold_on, "D1", T0)
    return unit


def day(n: int, hour: int = 12) -> datetime:
    """Noon (by default) of the n-th day after the sale date (day 0 is the sale date)."""
    return datetime.combine(SOLD + timedelta(days=n), datetime.min.time(), UTC) + timedelta(hours=hour)


def swap(unit: Unit, job_id: str, at: datetime, *, category: str = "compressor", covered: bool = True) -> None:
    unit.swap_part(
        PartSwapped(
            swap_id=f"{job_id}-{category}-{at.isoformat()}",
            job_id=job_id,
            request_id=f"r-{job_id}",
            serial=unit.id,
            part_number="P-1",
            part_category=category,
            quantity=1,
            covered=covered,
            reason="test",
            unit_cost=Decimal("10.00"),
            currency="EUR",
            recorded_by="T1",
        ),
        at,
    )


def types(unit: Unit) -> list[str]:
    return [p.data.event_type for p in unit.take_pending()]


def test_registering_records_the_sale_once():
    unit = sold_unit()
    assert types(unit) == ["product.registered"]
    with pytest.raises(Conflict) as again:
        unit.register("T-100", "tractor", SOLD, "D1", T0)
    assert again.value.field == "serial"


def test_a_sale_date_after_today_is_refused_and_today_is_fine():
    with pytest.raises(RuleViolation) as future:
        Unit(id="SN2").register("T-100", "tractor", T0.date() + timedelta(days=1), None, T0)
    assert future.value.field == "sold_on"
    Unit(id="SN3").register("T-100", "tractor", T0.date(), None, T0)


@pytest.mark.parametrize("kind, last_day", [(ReturnKind.return_, 7), (ReturnKind.exchange, 15)])
def test_the_last_day_of_a_window_is_in_and_the_next_day_is_out(kind, last_day):
    inside = decide_return(kind, SOLD, SOLD + timedelta(days=last_day), LIMITS, None)
    outside = decide_return(kind, SOLD, SOLD + timedelta(days=last_day + 1), LIMITS, None)
    assert (inside.accepted, inside.days_since_sale) == (True, last_day)
    assert inside.basis == f"within_{kind.value}_days"
    assert (outside.accepted, outside.days_since_sale) == (False, last_day + 1)
    assert f"{kind.value} window of {last_day} days" in outside.reasons[0]


def test_a_return_refused_within_the_exchange_window_offers_an_exchange_and_later_a_repair():
    assert decide_return(ReturnKind.return_, SOLD, SOLD + timedelta(days=8), LIMITS, None).remedy == "exchange"
    assert decide_return(ReturnKind.return_, SOLD, SOLD + timedelta(days=16), LIMITS, None).remedy == "repair"
    assert decide_return(ReturnKind.exchange, SOLD, SOLD + timedelta(days=16), LIMITS, None).remedy == "repair"


def test_the_windows_are_configurable():
    strict = ReturnLimits(return_days=3, exchange_days=5)
    assert decide_return(ReturnKind.return_, SOLD, SOLD + timedelta(days=3), strict, None).accepted
    assert not decide_return(ReturnKind.return_, SOLD, SOLD + timedelta(days=4), strict, None).accepted
    assert not decide_return(ReturnKind.exchange, SOLD, SOLD + timedelta(days=6), strict, None).accepted


def test_a_return_dated_before_the_sale_is_refused():
    with pytest.raises(RuleViolation) as refused:
        decide_return(ReturnKind.return_, SOLD, SOLD - timedelta(days=1), LIMITS, None)
    assert refused.value.field == "occurred_at"


def test_the_7th_day_returns_the_unit_and_it_cannot_be_returned_twice():
    unit = sold_unit()
    decision = unit.request_return("ret-1", ReturnKind.return_, "noisy", day(7, hour=23), LIMITS, "agent-1")
    assert decision.accepted and unit.outcome == "returned"
    assert types(unit)[-1] == "unit.returned"
    with pytest.raises(Conflict):
        unit.request_return("ret-2", ReturnKind.exchange, "again", day(8), LIMITS, "agent-1")


def test_the_8th_day_records_a_rejected_return_with_its_reasons():
    unit = sold_unit()
    decision = unit.request_return("ret-1", ReturnKind.return_, "noisy", day(8, hour=0), LIMITS, "agent-1")
    pending = unit.take_pending()
    assert not decision.accepted and unit.outcome is None
    rejected = pending[-1].data
    assert rejected.event_type == "return.rejected"
    assert (rejected.remedy, rejected.days_since_sale, rejected.kind) == ("exchange", 8, ReturnKind.return_)
    assert rejected.reasons[1] == "the unit has no two-repair entitlement"


def test_the_15th_day_exchanges_and_the_16th_does_not():
    assert sold_unit().request_return("e1", ReturnKind.exchange, "dead", day(15), LIMITS, "a").accepted
    assert not sold_unit().request_return("e2", ReturnKind.exchange, "dead", day(16), LIMITS, "a").accepted


def test_two_repairs_of_the_same_fault_and_a_third_failure_entitle_the_unit_once():
    unit = sold_unit()
    swap(unit, "J1", day(30))
    unit.note_repair("J1", "r-J1", "T1", "D1", day(30, hour=14))
    swap(unit, "J2", day(60))
    unit.note_repair("J2", "r-J2", "T1", "D1", day(60, hour=14))
    assert unit.entitlement is None, "two repairs alone are not a failure after them"
    swap(unit, "J3", day(90))
    assert unit.entitlement is not None
    assert (unit.entitlement.fault_category, unit.entitlement.repair_job_ids, unit.entitlement.failure_job_id) == (
        "compressor",
        ("J1", "J2"),
        "J3",
    )
    entitled = [p.data for p in unit.take_pending() if p.data.event_type == "unit.exchange_entitled"]
    assert len(entitled) == 1 and "jobs J1 and J2" in entitled[0].reason
    swap(unit, "J4", day(120))
    assert "unit.exchange_entitled" not in types(unit)


def test_the_order_facts_arrive_in_does_not_matter_only_their_times():
    unit = sold_unit()
    swap(unit, "J1", day(30))
    swap(unit, "J2", day(60))
    swap(unit, "J3", day(90))  # the third failure was synced before dispatch's completions reached warranty
    unit.note_repair("J2", "r-J2", "T1", "D1", day(60, hour=14))
    assert unit.entitlement is None
    unit.note_repair("J1", "r-J1", "T1", "D1", day(30, hour=14))
    assert unit.entitlement is not None and unit.entitlement.failure_job_id == "J3"
    entitled = [p for p in unit.take_pending() if p.data.event_type == "unit.exchange_entitled"]
    assert entitled[0].occurred_at == day(90), "stamped when the fault came back, not when the last fact arrived"


def test_a_repair_is_noted_once():
    unit = sold_unit()
    unit.note_repair("J1", "r-J1", "T1", "D1", day(30))
    unit.note_repair("J1", "r-J1", "T1", "D1", day(31))
    assert types(unit).count("unit.repair_recorded") == 1


@pytest.mark.parametrize(
    "why, steps",
    [
        ("different faults", [("J1", "compressor", True), ("J2", "pump", True), ("J3", "compressor", True)]),
        (
            "a billable repair is not one under warranty",
            [("J1", "compressor", False), ("J2", "compressor", True), ("J3", "compressor", True)],
        ),
        (
            "the third failure is billable",
            [("J1", "compressor", True), ("J2", "compressor", True), ("J3", "compressor", False)],
        ),
    ],
)
def test_no_entitlement_without_two_covered_repairs_of_the_same_fault_and_a_covered_third_failure(why, steps):
    unit = sold_unit()
    for n, (job_id, category, covered) in enumerate(steps, start=1):
        swap(unit, job_id, day(30 * n), category=category, covered=covered)
        unit.note_repair(job_id, f"r-{job_id}", "T1", "D1", day(30 * n, hour=14))
    assert unit.entitlement is None, why


def test_a_job_not_completed_fixed_is_no_repair():
    unit = sold_unit()
    swap(unit, "J1", day(30))
    unit.note_repair("J1", "r-J1", "T1", "D1", day(30, hour=14))
    swap(unit, "J2", day(60))  # J2 never completed fixed
    swap(unit, "J3", day(90))
    assert unit.entitlement is None


def test_a_failure_must_come_after_the_second_repair_was_completed():
    unit = sold_unit()
    swap(unit, "J1", day(30))
    unit.note_repair("J1", "r-J1", "T1", "D1", day(30, hour=14))
    swap(unit, "J3", day(50))  # another job's swap, before the second repair was done
    swap(unit, "J2", day(60))
    unit.note_repair("J2", "r-J2", "T1", "D1", day(60, hour=14))
    assert unit.entitlement is None


def test_an_entitled_unit_may_be_returned_long_after_the_windows():
    unit = sold_unit()
    for n, job_id in enumerate(("J1", "J2"), start=1):
        swap(unit, job_id, day(30 * n))
        unit.note_repair(job_id, f"r-{job_id}", "T1", "D1", day(30 * n, hour=14))
    swap(unit, "J3", day(200))
    decision = unit.request_return("ret", ReturnKind.return_, "third compressor", day(210), LIMITS, "agent-1")
    assert decision.accepted and decision.basis == "two_repair_rule" and decision.days_since_sale == 210
    assert unit.outcome == "returned"
