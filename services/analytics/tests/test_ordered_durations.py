"""The findings' medians by key from numpy (`ordered_durations`): each key's median and the median of every other
key's durations pooled equal the reference's (`metrics.median`, `metrics.median_without`), for random keys with
ties, negative durations, requests not measured and keys with none measured, encoded by the SQL expression the
findings hand to DuckDB; and the dense ranks numpy encodes a step with instead, when its durations lie too far
apart for that encoding (any 64-bit durations), agree too."""

from __future__ import annotations

import random

import duckdb
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.metrics import median, median_without
from services.analytics.ordered_durations import LARGEST_ENCODED, DenseRanks, Encoding, Ordered, Runs
from shared.testing.properties import examples

# Each key: its requests' durations on one step, None for a request not measured on it.
keyed_durations = st.lists(
    st.lists(st.one_of(st.none(), st.integers(-(10**6), 10**12)), min_size=1, max_size=30), min_size=1, max_size=8
)


def encoded_by_duckdb(keys: list[list[int | None]], encoding: Encoding) -> np.ndarray:
    """Every request's encoded duration as the engine computes it (`Encoding.sql`), shuffled as a scan returns."""
    rows = [(code, d) for code, durations in enumerate(keys) for d in durations]
    random.Random(len(rows)).shuffle(rows)
    con = duckdb.connect()
    return con.execute(
        f"SELECT {encoding.sql('code', 'd')} AS e FROM (SELECT unnest($codes) AS code, unnest($d)::BIGINT AS d)",
        {"codes": [c for c, _ in rows], "d": [d for _, d in rows]},
    ).fetchnumpy()["e"]


def expected(keys: list[list[int | None]]) -> tuple[list, list]:
    measured = [sorted(d for d in durations if d is not None) for durations in keys]
    everyone = sorted(d for durations in measured for d in durations)
    middles = [(len(m), 2 * median(m) if m else None) for m in measured]
    chosen = [i for i, m in enumerate(measured) if m and len(everyone) > len(m)]
    return middles, [(i, 2 * median_without(everyone, measured[i])) for i in chosen]


@settings(max_examples=examples(200), deadline=None)
@given(keyed_durations)
def test_the_keys_and_the_peers_medians_equal_the_reference(keys):
    middles, peers = expected(keys)
    values = [d for durations in keys for d in durations if d is not None]
    encoding = Encoding.of(min(values), max(values), len(keys)) if values else Encoding(0, 1)
    assert encoding is not None
    counts = np.array([sum(d is not None for d in durations) for durations in keys], dtype=np.int64)
    ordered = Ordered.of(encoded_by_duckdb(keys, encoding), Runs.of([len(d) for d in keys]), counts, encoding)
    assert ordered.middles() == middles
    assert ordered.measured == len(values)
    assert ordered.peer_middles([i for i, _ in peers]) == [twice for _, twice in peers]


# Durations anywhere in 64 bits: far too far apart for key × span + (duration − lowest).
INT64 = 2**63
keyed_wide_durations = st.lists(
    st.lists(
        st.one_of(st.none(), st.integers(-INT64, INT64 - 1), st.integers(-3, 3)), min_size=1, max_size=30
    ),  # small values too, for ties
    min_size=1,
    max_size=8,
)


@settings(max_examples=examples(200), deadline=None)
@given(keyed_wide_durations)
def test_dense_ranks_give_the_keys_and_the_peers_medians_of_the_reference_for_any_64_bit_durations(keys):
    middles, peers = expected(keys)
    rows = [(code, d) for code, durations in enumerate(keys) for d in durations]
    random.Random(len(rows)).shuffle(rows)  # in any order, as a scan returns them
    codes = np.array([c for c, _ in rows], dtype=np.int64)
    durations = np.array([0 if d is None else d for _, d in rows], dtype=np.int64)
    measured = np.array([d is not None for _, d in rows], dtype=bool)
    encoding, encoded = DenseRanks.encode(codes, durations, measured)
    counts = np.array([sum(d is not None for d in ds) for ds in keys], dtype=np.int64)
    ordered = Ordered.of(encoded, Runs.of([len(d) for d in keys]), counts, encoding)
    assert ordered.middles() == middles
    assert ordered.peer_middles([i for i, _ in peers]) == [twice for _, twice in peers]


def test_dense_ranks_take_a_step_no_span_can_encode():
    keys = [[-(2**63), 5, None], [2**63 - 1, 5], [None]]
    assert Encoding.of(-(2**63), 2**63 - 1, len(keys)) is None
    codes = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    durations = np.array([-(2**63), 5, 0, 2**63 - 1, 5, 0], dtype=np.int64)
    measured = np.array([True, True, False, True, True, False])
    encoding, encoded = DenseRanks.encode(codes, durations, measured)
    assert encoding.distinct.tolist() == [-(2**63), 5, 2**63 - 1] and encoding.span == 4
    assert encoded.tolist() == [0, 1, 3, 6, 5, 11]  # key × 4 + rank; a request not measured 4 − 1
    ordered = Ordered.of(encoded, Runs.of([3, 2, 1]), np.array([2, 2, 0], dtype=np.int64), encoding)
    assert ordered.middles() == [(2, 5 - 2**63), (2, 2**63 + 4), (0, None)]
    assert ordered.peer_middles([0, 1]) == [2**63 + 4, 5 - 2**63]


def test_an_encoding_that_would_overflow_is_refused():
    assert Encoding.of(0, LARGEST_ENCODED // 2 - 3, 2) is not None  # 2 keys × span 2⁶¹ − 1
    assert Encoding.of(0, LARGEST_ENCODED // 2 - 2, 2) is None  # 2 keys × span 2⁶¹
    assert Encoding.of(-(2**62), 2**62, 1) is None
