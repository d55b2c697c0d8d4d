"""The arithmetic of the Definitions: exact, rounded half away from zero to one decimal at the very end."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from services.analytics.metrics import (
    Window,
    day_key,
    from_micros,
    median,
    minutes,
    month_key,
    nearest_rank_90,
    p90,
    percentage,
    round_half_away,
    rounded,
    rounded_minutes,
    to_micros,
    weighted_score,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        (Fraction(1225, 100), "12.3"),
        (Fraction(-1225, 100), "-12.3"),
        (Fraction(1224999, 100000), "12.2"),
        (Fraction(5, 100), "0.1"),
        (Fraction(-5, 100), "-0.1"),
        (Fraction(4, 100), "0.0"),
        (Fraction(-4, 100), "0.0"),
        (Fraction(1, 3), "0.3"),
        (Fraction(2, 3), "0.7"),
        (Fraction(200, 3), "66.7"),
        (0, "0.0"),
        (100, "100.0"),
        (Fraction(2675, 1000), "2.7"),  # a float says 2.67499999…: round(2.675, 2) is 2.67
        (Fraction(1015, 100), "10.2"),  # round(10.15, 1) is 10.2 by luck, 10.1 in other floats
    ],
)
def test_rounding_is_half_away_from_zero_on_the_exact_value(value, expected):
    assert round_half_away(value) == Decimal(expected)
    assert rounded(value) == float(expected)


def test_rounded_never_shows_a_negative_zero():
    assert str(rounded(Fraction(-1, 100))) == "0.0"


def test_null_stays_null():
    assert rounded(None) is None and rounded_minutes(None) is None and minutes(None) is None


@pytest.mark.parametrize(
    "count, rank", [(1, 1), (2, 2), (9, 9), (10, 9), (11, 10), (19, 18), (20, 18), (70, 63), (100, 90), (101, 91)]
)
def test_the_p90_rank_is_the_ceiling_of_nine_tenths_of_n_in_integers(count, rank):
    assert nearest_rank_90(count) == rank == math.ceil(Fraction(9 * count, 10))


def test_the_p90_rank_is_exact_for_every_count_up_to_a_thousand():
    assert all(nearest_rank_90(n) == math.ceil(Fraction(9 * n, 10)) for n in range(1, 1001))


@pytest.mark.parametrize("count", [1, 2, 10, 11, 70])
def test_p90_is_the_nearest_rank_value(count):
    values = list(range(count, 0, -1))  # unsorted on purpose: count … 1
    assert p90(values) == nearest_rank_90(count)


def test_median_of_an_odd_count_is_the_middle_and_of_an_even_count_the_mean_of_the_two_middle_ones():
    assert median([7, 1, 3]) == 3
    assert median([4, 1, 3, 2]) == Fraction(5, 2)
    assert median([10, 14]) == 12
    assert median([1]) == 1
    assert median([]) is None and p90([]) is None


def test_an_even_median_of_minutes_rounds_its_exact_half():
    # 10 min and 14 min 30 s: the median is 12.25 min, shown as 12.3
    assert rounded_minutes(median([10 * 60_000_000, 14 * 60_000_000 + 30_000_000])) == 12.3


def test_a_percentage_of_nothing_is_null_and_complaints_may_exceed_100():
    assert percentage(0, 0) is None
    assert percentage(3, 2) == 150
    assert percentage(1, 3) == Fraction(100, 3)


def test_the_score_weighs_unrounded_parts_counts_a_missing_part_as_zero_and_is_null_only_when_all_are_missing():
    third = Fraction(200, 3)
    assert weighted_score(third, third, None) == Fraction(100, 3)
    assert rounded(weighted_score(third, third, third)) == 66.7
    assert weighted_score(None, None, Fraction(80)) == 40
    assert weighted_score(None, None, None) is None
    assert weighted_score(0, None, None) == 0
    # rounding the parts first would give 0.2×66.7 + 0.3×66.7 + 0.5×33.3 = 50.0; the exact score is 49.99…
    assert rounded(weighted_score(third, third, Fraction(100, 3))) == 50.0
    assert rounded(weighted_score(Fraction(6665, 100), Fraction(6665, 100), Fraction(6665, 100))) == 66.7


def test_a_window_of_dates_is_half_open_in_utc():
    window = Window.of_dates(date(2025, 3, 1), date(2025, 3, 2))
    start = to_micros(datetime(2025, 3, 1, tzinfo=UTC))
    assert start in window and start - 1 not in window
    assert start + 86_400_000_000 - 1 in window and start + 86_400_000_000 not in window
    assert None not in window
    assert window.days() == [start]


def test_times_convert_exactly_and_keys_are_utc_days_and_months():
    moment = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
    assert from_micros(to_micros(moment)) == moment
    assert (day_key(to_micros(moment)), month_key(to_micros(moment))) == ("2024-02-29", "2024-02")
    assert day_key(to_micros(moment) + 1) == "2024-03-01"
