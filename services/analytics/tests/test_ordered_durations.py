"""The findings' medians by key from numpy (`ordered_durations`): each key's median and the median of every other
key's durations pooled equal the reference's (`metrics.median`, `metrics.median_without`), for random keys with
ties, negative durations, requests not measured and keys with none measured, encoded by the SQL expression the
findings hand to DuckDB; and the one-key-at-a-time path for spans that would overflow the encoding agrees."""

from __future__ import annotations

import random

import duckdb
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.metrics import median, median_without
from services.analytics.ordered_durations import LARGEST_ENCODED, Encoding, Ordered, Runs, middles_one_by_one
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


@settings(max_examples=examples(100), deadline=None)
@given(keyed_durations)
def test_one_key_at_a_time_agrees(keys):
    middles, peers = expected(keys)
    found, twice = middles_one_by_one([[d for d in ds if d is not None] for ds in keys], [i for i, _ in peers])
    assert found == middles
    assert twice == [t for _, t in peers]


def test_an_encoding_that_would_overflow_is_refused():
    assert Encoding.of(0, LARGEST_ENCODED // 2 - 3, 2) is not None  # 2 keys × span 2⁶¹ − 1
    assert Encoding.of(0, LARGEST_ENCODED // 2 - 2, 2) is None  # 2 keys × span 2⁶¹
    assert Encoding.of(-(2**62), 2**62, 1) is None
