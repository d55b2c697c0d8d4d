"""The order statistics the SQL views pick in DuckDB (`sqlviews._ranks`: one exact discrete quantile aggregate
per set of durations) equal the reference's (`metrics.median`, `metrics.p90`): for every group size from 1 up,
with ties, NULLs and rows outside the condition, for random groups, and at large n; and the upper middle's level
ranks n//2 + 1 up to the bound it is stated for, and no further. The duration histograms' buckets, counted by
DuckDB's binned `histogram` (`sqlviews._bucket_counts`), are the reference's, bounds and their neighbours included."""

from __future__ import annotations

import math
from fractions import Fraction

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics import views
from services.analytics.facts import RequestFact
from services.analytics.metrics import MICROS_PER_MINUTE, Window, median, p90
from services.analytics.sqlviews import (
    _HISTOGRAM_BOUNDS,
    _LEVELS,
    UPPER_MIDDLE_EXACT_UP_TO,
    UPPER_MIDDLE_LEVEL,
    _bucket_counts,
    _median,
    _p90,
    _ranks,
)
from services.analytics.views import DURATION_BUCKETS


def table_of(con: duckdb.DuckDBPyConnection, rows: list[tuple[int, int | None, bool]]) -> str:
    """A table t (g, x, keep) of the rows, in one statement (executemany inserts a row per statement)."""
    con.execute(
        "CREATE OR REPLACE TABLE t AS SELECT unnest($g) AS g, unnest($x)::BIGINT AS x, unnest($keep) AS keep",
        {"g": [r[0] for r in rows], "x": [r[1] for r in rows], "keep": [r[2] for r in rows]},
    )
    return "t"


def picked(con: duckdb.DuckDBPyConnection, table: str) -> dict[int, tuple]:
    """Per group g: (count, median, p90) as the views compute them from `_ranks` over rows with `keep`."""
    rows = con.execute(f"SELECT g, {_ranks('x', 'keep')} FROM {table} GROUP BY g").fetchall()
    return {g: (n, _median(n, low, high), _p90(n, top)) for g, n, low, high, top in rows}


def expected(values: list[int | None]) -> tuple:
    kept = [v for v in values if v is not None]
    return len(kept), median(kept), p90(kept)


@pytest.fixture
def con():
    connection = duckdb.connect(config={"threads": 2})
    yield connection
    connection.close()


def test_every_group_size_up_to_600_with_ties_nulls_and_rows_left_out_agrees_with_the_reference(con):
    # group n: n kept values with ties (i*7919 mod n, halved), one NULL and one left-out row that would be the
    # smallest and the largest if they counted.
    groups: dict[int, list[int | None]] = {n: [((i * 7919) % n) // 2 for i in range(n)] for n in range(1, 601)}
    rows: list[tuple[int, int | None, bool]] = [(n, v, True) for n, values in groups.items() for v in values]
    rows += [(n, None, True) for n in groups] + [(n, -(10**15), False) for n in groups]
    rows += [(n, 10**15, False) for n in groups]
    found = picked(con, table_of(con, rows))
    for n, values in groups.items():
        assert found[n] == expected(values), n


def test_a_group_of_only_nulls_or_left_out_rows_has_no_median_and_no_p90(con):
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, NULL::BIGINT, TRUE), (2, 5::BIGINT, FALSE)) v(g, x, keep)")
    assert picked(con, "t") == {1: (0, None, None), 2: (0, None, None)}


def test_one_and_two_values_take_the_value_and_the_mean_of_the_two(con):
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 7::BIGINT, TRUE), (2, 3, TRUE), (2, 8, TRUE)) v(g, x, keep)"
    )
    assert picked(con, "t") == {1: (1, 7, 7), 2: (2, Fraction(11, 2), 8)}


_SHARED = duckdb.connect(config={"threads": 1})  # one connection for the examples (a connect costs ~50 ms)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 5),
        st.lists(
            st.tuples(st.one_of(st.none(), st.integers(-(2**62), 2**62), st.integers(0, 3)), st.booleans()),
            min_size=1,
            max_size=80,
        ),
        min_size=1,
    )
)
def test_random_groups_agree_with_the_reference(groups):
    found = picked(_SHARED, table_of(_SHARED, [(g, x, keep) for g, rows in groups.items() for x, keep in rows]))
    assert found == {g: expected([x for x, keep in rows if keep]) for g, rows in groups.items()}


@pytest.mark.parametrize("n", [999_999, 1_000_000, 2**21, 2**21 + 1])
def test_a_million_values_and_more_pick_the_exact_ranks(con, n):
    # values 0 … n-1 in a scrambled order, so the k-th smallest is k - 1.
    con.execute(f"CREATE TABLE t AS SELECT 1 AS g, (i * 7919) % {n} AS x, TRUE AS keep FROM range({n}) r(i)")
    assert math.gcd(7919, n) == 1  # a permutation of 0 … n-1
    lower, upper, top = (n + 1) // 2 - 1, n // 2, (9 * n + 9) // 10 - 1
    assert picked(con, "t") == {1: (n, Fraction(lower + upper, 2), top)}


def upper_middle_rank(n: int) -> int:
    """⌈q·n⌉ for the upper middle's level q, in exact decimal arithmetic (as DuckDB computes it for a DECIMAL)."""
    return math.ceil(Fraction(UPPER_MIDDLE_LEVEL) * n)


def test_the_upper_middles_level_ranks_n_over_2_plus_1_up_to_its_bound_and_not_beyond():
    bound = UPPER_MIDDLE_EXACT_UP_TO
    for n in [*range(1, 5000), *range(bound - 5000, bound + 1)]:
        assert upper_middle_rank(n) == n // 2 + 1, n
    assert upper_middle_rank(bound + 1) != (bound + 1) // 2 + 1  # the bound is tight: the next odd n fails


def test_a_group_larger_than_the_bound_is_refused_rather_than_given_a_wrong_median():
    with pytest.raises(ValueError):
        _median(UPPER_MIDDLE_EXACT_UP_TO + 1, 0, 0)


def test_the_levels_are_decimals_so_that_duckdb_computes_the_ranks_in_integers(con):
    assert con.execute(f"SELECT typeof({_LEVELS})").fetchone()[0] == "DECIMAL(13,12)[]"


# --- the duration histograms' buckets (`sqlviews._bucket_counts` over DuckDB's binned `histogram`) -----------


def reference_buckets(durations: list[int]) -> list[int]:
    """The counts per `DURATION_BUCKETS` bucket as the reference (`views.duration_histograms`) bins them."""
    facts = [RequestFact("R", 0, None, None, None, triaged_at=d) for d in durations]
    step = views.duration_histograms(facts, Window(0, 1))["triage"]
    return [bucket["count"] for bucket in step["buckets"]]


def engine_buckets(con: duckdb.DuckDBPyConnection, durations: list[int | None]) -> list[int]:
    con.execute("CREATE OR REPLACE TABLE h AS SELECT unnest($x)::BIGINT AS x", {"x": durations})
    n, binned = con.execute(f"SELECT count(x), histogram(x, {_HISTOGRAM_BOUNDS}) FROM h").fetchone()
    return _bucket_counts(n, binned)


def test_every_bucket_bound_and_its_neighbours_fall_in_the_bucket_the_reference_puts_them_in(con):
    bounds = [upper * MICROS_PER_MINUTE for _, upper in DURATION_BUCKETS[:-1]]
    edges = [b + delta for b in bounds for delta in (-1, 0, 1)]
    durations = [*edges, -(10**12), -1, 0, 10**15, *edges[:5]]  # negatives, far past the last bound, ties
    assert engine_buckets(con, [*durations, None, None]) == reference_buckets(durations)


def test_no_durations_or_only_nulls_count_nothing_in_any_bucket(con):
    assert engine_buckets(con, [None, None]) == [0] * len(DURATION_BUCKETS)
    assert _bucket_counts(0, None) == [0] * len(DURATION_BUCKETS)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**42), st.integers(0, 10**12)), max_size=60))
def test_random_durations_fall_in_the_buckets_the_reference_puts_them_in(durations):
    assert engine_buckets(_SHARED, durations) == reference_buckets([d for d in durations if d is not None])
