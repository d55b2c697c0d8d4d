"""Coverage on its own, with fixed dates: no database, no Kafka, no web."""

from datetime import UTC, date, datetime

import pytest

from services.warranty.coverage import (
    Policy,
    PolicyBook,
    Sale,
    anniversary,
    coverage_end,
    judge,
    policy_from,
    unit_coverage,
)
from services.warranty.domain import ProductLinePolicy
from shared.contracts.warranty import CoverageBasis
from shared.domain import RuleViolation

SOLD = date(2025, 3, 1)
TRACTOR = policy_from("tractor", 24, {"Compressor": 60, "battery": 6}, ["Filter", "belt"], None)


def sale(sold_on: date = SOLD, basis: CoverageBasis = CoverageBasis.registered_sale) -> Sale:
    return Sale("SN1", sold_on, basis)


@pytest.mark.parametrize(
    "start, months, expected_last_day",
    [
        (date(2025, 3, 1), 24, date(2027, 2, 28)),
        (date(2025, 3, 15), 12, date(2026, 3, 14)),
        (date(2025, 1, 31), 1, date(2025, 2, 28)),  # no 31 February: covered to the end of the month
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year
        (date(2025, 1, 30), 1, date(2025, 2, 28)),
        (date(2025, 1, 28), 1, date(2025, 2, 27)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),  # a leap-day sale, a year on
        (date(2024, 2, 29), 48, date(2028, 2, 28)),  # the next leap day exists: the day before it
        (date(2025, 12, 31), 2, date(2026, 2, 28)),  # across the year end
        (date(2025, 8, 31), 1, date(2025, 9, 30)),
    ],
)
def test_coverage_ends_the_day_before_the_anniversary_and_month_ends_never_lose_a_day(start, months, expected_last_day):
    assert coverage_end(start, months) == expected_last_day


def test_an_anniversary_on_a_missing_day_rolls_to_the_first_of_the_next_month():
    assert anniversary(date(2025, 1, 31), 1) == date(2025, 3, 1)
    assert anniversary(date(2024, 2, 29), 12) == date(2025, 3, 1)
    assert anniversary(date(2025, 11, 30), 3) == date(2026, 3, 1)
    assert anniversary(date(2025, 12, 31), 2) == date(2026, 3, 1)


def test_a_unit_is_covered_through_expires_on_inclusive_and_not_the_day_after():
    last_day = judge(sale(), TRACTOR, date(2027, 2, 28))
    day_after = judge(sale(), TRACTOR, date(2027, 3, 1))
    assert (last_day.covered, last_day.expires_on) == (True, date(2027, 2, 28))
    assert "24-month warranty of product line tractor" in last_day.reason and "2025-03-01" in last_day.reason
    assert (day_after.covered, day_after.expires_on) == (False, date(2027, 2, 28))
    assert day_after.reason.startswith("not covered:") and "ended on 2027-02-28" in day_after.reason


def test_the_sale_day_itself_is_covered_and_the_day_before_is_not():
    assert judge(sale(), TRACTOR, SOLD).covered
    before = judge(sale(), TRACTOR, date(2025, 2, 28))
    assert not before.covered and "before the registered sale" in before.reason


def test_a_longer_part_category_is_covered_past_the_unit_and_ends_on_its_own_day():
    assert judge(sale(), TRACTOR, date(2030, 2, 28), "compressor").covered
    after = judge(sale(), TRACTOR, date(2030, 3, 1), "COMPRESSOR")
    assert not after.covered and after.expires_on == date(2030, 2, 28) and after.category == "compressor"
    assert "60-month coverage of part category compressor" in after.reason


def test_a_shorter_part_category_ends_before_the_unit():
    assert judge(sale(), TRACTOR, date(2025, 8, 31), "battery").covered
    assert not judge(sale(), TRACTOR, date(2025, 9, 1), "battery").covered
    assert judge(sale(), TRACTOR, date(2025, 9, 1)).covered


def test_an_excluded_wear_part_is_never_covered_even_on_the_day_of_sale():
    verdict = judge(sale(), TRACTOR, SOLD, " Filter ")
    assert not verdict.covered and verdict.expires_on is None
    assert verdict.reason == "not covered: part category filter is an excluded wear part of product line tractor"


def test_an_unnamed_category_follows_the_unit():
    assert judge(sale(), TRACTOR, date(2027, 2, 28), "pump").covered
    assert not judge(sale(), TRACTOR, date(2027, 3, 1), "pump").covered


def test_the_reason_says_when_coverage_counts_from_the_requests_purchase_date():
    verdict = judge(sale(basis=CoverageBasis.purchase_date), TRACTOR, date(2026, 1, 10))
    assert verdict.covered and verdict.basis == CoverageBasis.purchase_date
    assert "purchase date 2025-03-01 given on the request (serial SN1 is not registered)" in verdict.reason


def test_without_any_sale_date_nothing_is_covered_and_the_reason_says_why():
    verdict = judge(None, None, date(2026, 1, 10), serial="SN-X")
    assert (verdict.covered, verdict.expires_on, verdict.basis) == (False, None, CoverageBasis.none)
    assert verdict.reason == "not covered: serial SN-X is not registered and the request gives no purchase date"


def test_a_unit_follows_the_policy_version_in_force_on_its_sale_date():
    old = policy_from("tractor", 24, {}, [], None)
    new = policy_from("tractor", 12, {}, [], date(2025, 6, 1))
    book = PolicyBook("tractor", (old, new), default_months=12)
    assert book.for_sale(date(2025, 5, 31)).months == 24
    assert book.for_sale(date(2025, 6, 1)).months == 12


def test_a_product_line_without_a_policy_gets_the_default_and_the_reason_says_so():
    policy = PolicyBook("mower", (), default_months=12).for_sale(SOLD)
    verdict = judge(sale(), policy, date(2026, 2, 28))
    assert verdict.covered and "default 12-month warranty (no policy for product line mower)" in verdict.reason
    nothing = judge(sale(), PolicyBook("mower", (), default_months=0).for_sale(SOLD), SOLD)
    assert not nothing.covered and nothing.expires_on is None


def test_unit_coverage_lists_each_named_categorys_last_day_and_excluded_ones_as_null():
    view = unit_coverage(sale(), TRACTOR, date(2026, 1, 1))
    assert view.verdict.covered and view.verdict.expires_on == date(2027, 2, 28)
    assert view.parts == {"battery": date(2025, 8, 31), "compressor": date(2030, 2, 28), "belt": None, "filter": None}


def test_setting_a_policy_again_for_the_same_effective_date_replaces_it():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    aggregate = ProductLinePolicy(id="policy:tractor")
    aggregate.set("tractor", 24, {}, [], None, at)
    aggregate.set("tractor", 36, {}, ["filter"], None, at)
    aggregate.set("tractor", 12, {}, [], date(2026, 1, 1), at)
    book = aggregate.book("tractor", 0)
    assert [p.months for p in book.versions] == [36, 12]
    assert book.for_sale(date(2025, 1, 1)).excluded_categories == frozenset({"filter"})


def test_a_category_both_excluded_and_given_months_is_refused():
    with pytest.raises(RuleViolation) as refused:
        ProductLinePolicy(id="policy:x").set("x", 12, {"filter": 6}, ["FILTER"], None, datetime(2026, 1, 1, tzinfo=UTC))
    assert refused.value.field == "excluded_categories"


def test_a_policy_is_a_value_with_case_insensitive_categories():
    assert TRACTOR == Policy("tractor", 24, {"compressor": 60, "battery": 6}, frozenset({"filter", "belt"}))
