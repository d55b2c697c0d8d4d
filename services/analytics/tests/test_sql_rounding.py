"""The SQL views' integer rounding (`sqlviews._tenths` and the helpers built on it) gives exactly what the reference's
Fraction rounding (`metrics.rounded`, `rounded_minutes`, `percentage`) gives: halves away from zero, negative
values, zero without a sign, denominators that are not powers of ten, negative denominators (a steps' total
below zero); and the medians' bound on the group size holds without a Fraction."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.analytics.metrics import MICROS_PER_MINUTE, percentage, rounded, rounded_minutes
from services.analytics.sqlviews import (
    UPPER_MIDDLE_EXACT_UP_TO,
    _median,
    _median_minutes,
    _minutes,
    _p90,
    _p90_minutes,
    _pct,
    _tenths,
)

BIG = 10**15


@given(st.integers(-BIG, BIG), st.integers(1, 10**12))
def test_any_ratio_rounds_as_the_fraction_does(numerator, denominator):
    ours, reference = _tenths(numerator, denominator), rounded(Fraction(numerator, denominator))
    assert ours == reference
    assert math.copysign(1, ours) == math.copysign(1, reference)  # no -0.0 where the reference shows 0.0


def test_halves_go_away_from_zero_and_a_small_negative_value_shows_zero_unsigned():
    assert _tenths(1225, 100) == 12.3 and _tenths(-1225, 100) == -12.3
    assert _tenths(1224999, 100000) == 12.2 and _tenths(-1, 25) == 0.0 and math.copysign(1, _tenths(-1, 25)) == 1


@given(st.integers(-BIG, BIG), st.integers(-(10**12), -1))
def test_a_negative_denominator_rounds_as_the_fraction_does(numerator, denominator):
    ours, reference = _tenths(numerator, denominator), rounded(Fraction(numerator, denominator))
    assert ours == reference
    assert math.copysign(1, ours) == math.copysign(1, reference)


def test_a_negative_denominator_moves_its_sign_to_the_numerator_before_rounding_halves_away_from_zero():
    assert _tenths(1225, -100) == -12.3 and _tenths(-1225, -100) == 12.3 and _tenths(1224999, -100000) == -12.2
    assert _tenths(1, -25) == 0.0 and math.copysign(1, _tenths(1, -25)) == 1
    assert _pct(-3, -4) == 75.0 and _pct(3, -4) == -75.0 and _pct(1, -3) == -33.3  # a share of a total below zero


@given(st.integers(0, BIG), st.integers(0, BIG))
def test_a_percentage_rounds_as_the_reference_and_is_none_of_nothing(part, whole):
    assert _pct(part, whole) == rounded(percentage(part, whole))


@given(st.integers(-BIG, BIG), st.integers(-BIG, BIG))
def test_a_percentage_of_parts_and_wholes_of_either_sign_rounds_as_the_reference(part, whole):
    ours, reference = _pct(part, whole), rounded(percentage(part, whole))
    assert ours == reference
    if reference is not None:
        assert math.copysign(1, ours) == math.copysign(1, reference)  # no -0.0 where the reference shows 0.0


@given(st.integers(-BIG, BIG))
def test_microseconds_round_to_minutes_as_the_reference(micros):
    assert _minutes(micros) == rounded_minutes(micros)


@given(st.integers(0, 10**6), st.integers(-BIG, BIG), st.integers(-BIG, BIG))
def test_a_median_and_a_p90_in_minutes_round_as_the_reference(n, low, high):
    assert _median_minutes(n, low, high) == rounded_minutes(_median(n, low, high))
    assert _p90_minutes(n, high) == rounded_minutes(_p90(n, high))
    assert _median_minutes(1, 3 * MICROS_PER_MINUTE // 20, 3 * MICROS_PER_MINUTE // 20) == 0.2  # 0.15 min → 0.2


def test_a_median_in_minutes_of_a_group_larger_than_the_bound_is_refused():
    assert _median_minutes(UPPER_MIDDLE_EXACT_UP_TO, 0, 2 * MICROS_PER_MINUTE) == 1.0
    with pytest.raises(ValueError):
        _median_minutes(UPPER_MIDDLE_EXACT_UP_TO + 1, 0, 0)
