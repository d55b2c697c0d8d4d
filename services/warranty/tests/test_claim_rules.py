"""Claim adjudication and money on their own, with fixed clocks."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.warranty.claims import Claim, ClaimFacts, ClaimStatus, SwapLine, adjudicate, amounts
from services.warranty.coverage import Verdict
from shared.contracts.warranty import ClaimSubmitted, CoverageBasis
from shared.domain import InvalidTransition

COMPLETED = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
COVERED = Verdict(True, date(2027, 1, 1), "covered: within ...", CoverageBasis.registered_sale)
EXPIRED = Verdict(
    False, date(2026, 1, 1), "not covered: the 12-month warranty ... ended on 2026-01-01", CoverageBasis.registered_sale
)


def facts(coverage=COVERED, swaps=(SwapLine("s1", "J1", True, 2, Decimal("10.25")),)) -> ClaimFacts:
    return ClaimFacts("J1", "R1", COMPLETED, coverage, tuple(swaps))


def verdicts(reasons) -> dict[str, bool]:
    return {r.rule: r.ok for r in reasons}


def filed_on_day(n: int, hour: int = 23) -> datetime:
    return datetime.combine(COMPLETED.date() + timedelta(days=n), datetime.min.time(), UTC) + timedelta(hours=hour)


@pytest.mark.parametrize("days, ok", [(0, True), (30, True), (31, False)])
def test_a_claim_may_be_filed_through_the_30th_day_after_completion(days, ok):
    reasons = adjudicate(facts(), filed_on_day(days, hour=0 if days == 31 else 23), claim_days=30)
    assert verdicts(reasons) == {
        "coverage_valid": True,
        "swaps_belong_to_job": True,
        "defective_part_returned": True,
        "filed_within_limit": ok,
    }
    limit = next(r for r in reasons if r.rule == "filed_within_limit")
    assert limit.detail == f"filed {days} day(s) after the job's completion on 2026-03-01; the limit is 30"


def test_coverage_that_had_ended_fails_with_the_coverage_reason():
    reasons = adjudicate(facts(coverage=EXPIRED), filed_on_day(1), claim_days=30)
    coverage = next(r for r in reasons if r.rule == "coverage_valid")
    assert not coverage.ok and coverage.detail == EXPIRED.reason


def test_a_job_whose_request_never_reached_warranty_fails_the_coverage_rule():
    coverage = adjudicate(facts(coverage=None), filed_on_day(1), claim_days=30)[0]
    assert (coverage.rule, coverage.ok) == ("coverage_valid", False) and "R1" in coverage.detail


def test_swaps_of_another_job_or_unknown_ones_fail_the_swaps_rule_and_are_named():
    lines = (
        SwapLine("s1", "J1", True, 1, Decimal("5")),
        SwapLine("s2", "J9", True, 1, Decimal("5")),
        SwapLine("s3", None),
    )
    rule = next(r for r in adjudicate(facts(swaps=lines), filed_on_day(1), 30) if r.rule == "swaps_belong_to_job")
    assert not rule.ok and rule.detail == "swaps not recorded for job J1: s2, s3"


def test_amounts_are_decimal_labour_by_the_hourly_rate_plus_covered_parts_of_the_job_only():
    lines = (
        SwapLine("s1", "J1", True, 2, Decimal("10.25")),
        SwapLine("s2", "J1", False, 1, Decimal("99.99")),
        SwapLine("s3", "J9", True, 1, Decimal("50.00")),
    )
    worth = amounts(95, Decimal("45.00"), lines, "J1")
    assert (worth.labour, worth.parts, worth.total) == (Decimal("71.25"), Decimal("20.50"), Decimal("91.75"))
    assert amounts(1, Decimal("0.10"), (), "J1").labour == Decimal("0.00")  # 0.001666… rounds to 0.00
    assert amounts(3, Decimal("0.10"), (), "J1").labour == Decimal("0.01")  # 0.005 rounds half up


def submitted(total: str = "91.75") -> ClaimSubmitted:
    return ClaimSubmitted(
        claim_id="C1",
        job_id="J1",
        request_id="R1",
        serial="SN1",
        dealer_id="D1",
        labour_minutes=95,
        swap_ids=["s1"],
        labour_amount=Decimal("71.25"),
        parts_amount=Decimal("20.50"),
        total_amount=Decimal(total),
        currency="EUR",
        submitted_by="D1",
    )


def test_a_claim_passing_every_rule_is_approved_by_the_rules_at_once():
    claim = Claim.submit(submitted(), adjudicate(facts(), filed_on_day(3), 30), filed_on_day(3))
    assert claim.status == ClaimStatus.approved
    assert [p.data.event_type for p in claim.take_pending()] == ["claim.submitted", "claim.approved"]
    assert claim.decisions[-1].decided_by == "rules" and not claim.decisions[-1].override


def test_a_claim_failing_a_rule_is_rejected_and_an_officer_may_override_with_who_and_why():
    claim = Claim.submit(submitted(), adjudicate(facts(), filed_on_day(31), 30), filed_on_day(31))
    assert claim.status == ClaimStatus.rejected
    claim.override(True, "officer-olga", "courier strike delayed the paperwork", filed_on_day(32))
    decision = claim.decisions[-1]
    assert claim.status == ClaimStatus.approved
    assert (decision.decided_by, decision.override, decision.note) == (
        "officer-olga",
        True,
        "courier strike delayed the paperwork",
    )
    assert [(r.rule, r.ok) for r in decision.reasons] == [("officer_override", True)]
    with pytest.raises(InvalidTransition):
        claim.override(True, "officer-olga", "again", filed_on_day(33))
    claim.override(False, "officer-max", "duplicate invoice found", filed_on_day(34))
    assert claim.status == ClaimStatus.rejected and len(claim.decisions) == 3


def test_a_covered_swap_whose_category_must_come_back_fails_the_return_rule_until_its_part_is_returned():
    required = frozenset({"compressor"})
    compressor = SwapLine("s1", "J1", True, 1, Decimal("300.00"), "compressor")
    billable = SwapLine("s2", "J1", False, 1, Decimal("300.00"), "compressor")  # not paid, so not asked back
    filter_ = SwapLine("s3", "J1", True, 1, Decimal("9.00"), "filter")

    def rule(*lines):
        facts = ClaimFacts("J1", "R1", COMPLETED, COVERED, lines, required)
        return next(r for r in adjudicate(facts, filed_on_day(1), 30) if r.rule == "defective_part_returned")

    missing = rule(compressor, billable, filter_)
    assert not missing.ok and missing.detail == "the defective part of swap(s) s1 has not come back"
    returned = rule(SwapLine("s1", "J1", True, 1, Decimal("300.00"), "compressor", part_returned=True), filter_)
    assert returned.ok and "all 1 swap(s)" in returned.detail
    assert rule(filter_, billable).ok
