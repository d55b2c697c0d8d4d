"""Property: the SQL views over the DuckDB projection equal the pure-Python reference (facts.fold_all +
views.py), row by row, for random histories delivered in any order, in any batches, with duplicates — live and
`as_of` many moments (the reference then folds only the events recorded by that moment)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import sqlviews, views
from services.analytics.facts import fold_all
from services.analytics.projection import Projection, run
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import (
    BASE,
    GROUPINGS,
    MIN,
    WINDOWS,
    delivered,
    drawn_projection,
    moments,
    projected,
    request_history,
)
from services.analytics.views import GroupBy
from shared.testing.properties import examples


@st.composite
def deliveries(draw) -> tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]]:
    """A history, and the batches it arrives in: shuffled across requests, some events twice."""
    return delivered(draw, [e for n in range(draw(st.integers(1, 6))) for e in draw(request_history(n))])


def reference(events: list[AnalyticsEvent], as_of: int | None, dealer: str | None):
    recorded = [e for e in events if as_of is None or e.recorded_at <= as_of]
    requests, revisits = fold_all(recorded)
    if dealer is not None:
        requests = [f for f in requests if f.dealer_id == dealer]
        revisits = [r for r in revisits if r.dealer_id == dealer]
    return requests, revisits


def assert_views_equal(projection: Projection, events: list[AnalyticsEvent], pick) -> None:
    dealer = pick(st.sampled_from([None, "D1"]))
    window = pick(st.sampled_from(WINDOWS))
    with projection.reading() as (cur, tables):
        for as_of in moments(events, pick):
            requests, revisits = reference(events, as_of, dealer)
            for group_by in pick(GROUPINGS):
                args = (cur, tables, window, group_by, as_of, dealer)
                assert sqlviews.throughput_rows(*args) == views.throughput_rows(requests, window, group_by)
                assert sqlviews.satisfaction_rows(*args) == views.satisfaction_rows(revisits, window, group_by)
                assert sqlviews.scorecard_rows(*args) == views.scorecard_rows(requests, revisits, window, group_by)
            assert sqlviews.trend_rows(cur, tables, window, as_of, dealer) == views.trend_rows(requests, window)
            assert sqlviews.duration_histograms(cur, tables, window, as_of, dealer) == views.duration_histograms(
                requests, window
            )


@settings(
    max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@pytest.mark.timeout(600)
@given(deliveries(), st.data())
def test_the_sql_views_equal_the_reference_for_any_history_arrival_order_batching_and_duplicates(delivery, data):
    with projected(delivery, data.draw) as projection:  # both ways: catch-up and small batches, index scans
        assert_views_equal(projection, delivery[0], data.draw)


@settings(
    max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(deliveries(), st.data())
def test_folding_everything_at_once_gives_the_same_fact_versions_as_applying_batch_by_batch(delivery, data):
    events, batches = delivery
    live, bulk = drawn_projection(data.draw), Projection(":memory:")
    try:
        for batch in batches:
            live.apply(batch)
        cur = bulk.reader()
        tables = bulk.active_tables(cur)
        bulk.append_events(cur, tables.events, events)
        run(
            cur,
            f"INSERT INTO {tables.job_requests} SELECT job_id, min(request_id) FROM {tables.events} "
            "WHERE job_id IS NOT NULL AND request_id IS NOT NULL AND type <> 'complaint.opened' GROUP BY 1",
        )
        bulk.fold_everything(cur, tables, chunk=7)  # small chunks: a request's events straddle them
        for table in ("requests", "revisits", "jobs"):
            query = f"SELECT * FROM {getattr(tables, table)} ORDER BY ALL"
            assert live.reader().execute(query).fetchall() == cur.execute(query).fetchall(), table
    finally:
        live.close()
        bulk.close()


def test_a_dealer_whose_id_is_direct_sees_none_of_the_dealer_less_requests():
    events = [
        AnalyticsEvent(
            "e1",
            "service_request.received",
            "R1",
            None,
            BASE + MIN,
            BASE + MIN,
            1,
            {"dealer_id": None, "region": "north", "product_line": "baler"},
        ),
        AnalyticsEvent(
            "e2",
            "service_request.received",
            "R2",
            None,
            BASE + MIN,
            BASE + MIN,
            1,
            {"dealer_id": "direct", "region": "north", "product_line": "baler"},
        ),
    ]
    projection = Projection(":memory:")
    try:
        projection.apply(events)
        cur = projection.reader()
        tables = projection.active_tables(cur)
        window = WINDOWS[0]
        mine = sqlviews.throughput_rows(cur, tables, window, GroupBy.all, None, "direct")
        assert [(r["key"], r["received"]) for r in mine] == [("all", 1)]
        everyone = sqlviews.throughput_rows(cur, tables, window, GroupBy.dealer)
        assert [(r["key"], r["received"]) for r in everyone] == [("direct", 1), ("direct", 1)]  # two groups
    finally:
        projection.close()


def test_a_key_with_requests_only_outside_the_cohort_has_a_row_with_nothing_received_as_the_reference_has():
    # The throughput SQL groups a key's facts by being in the window's cohort or not: D2's only request was
    # received the day before the window and resolved (by phone) in it, so D2 has no cohort group at all; a request
    # whose `received` has not arrived (no received_at) resolves in the window under `all` only.
    window = WINDOWS[0]  # DAY0, one day

    def at(event_id: str, event_type: str, request: str, minute: int, **data) -> AnalyticsEvent:
        return AnalyticsEvent(event_id, event_type, request, None, BASE + minute * MIN, BASE + minute * MIN, 1, data)

    keys = {"region": "north", "product_line": "baler"}
    events = [
        at("e1", "service_request.received", "R1", -600, dealer_id="D2", **keys),
        at("e2", "service_request.triaged", "R1", 100, mode="phone", priority="P2"),
        at("e3", "service_request.received", "R2", 10, dealer_id="D1", **keys),
        at("e4", "service_request.triaged", "R2", 20, mode="onsite", priority="P2"),
        at("e5", "service_request.triaged", "R3", 30, mode="phone", priority="P2"),
    ]
    projection = Projection(":memory:")
    try:
        projection.apply(events)
        requests, _ = fold_all(events)
        with projection.reading() as (cur, tables):
            for group_by in GroupBy:
                rows = sqlviews.throughput_rows(cur, tables, window, group_by)
                assert rows == views.throughput_rows(requests, window, group_by), group_by
            by_dealer = {r["key"]: r for r in sqlviews.throughput_rows(cur, tables, window, GroupBy.dealer)}
            assert (by_dealer["D2"]["received"], by_dealer["D2"]["resolved"]) == (0, 1)
            assert by_dealer["D2"]["median_minutes_to_triage"] is None and by_dealer["D2"]["escalated_pct"] is None
            everyone = sqlviews.throughput_rows(cur, tables, window, GroupBy.all)
            assert [(r["received"], r["resolved"]) for r in everyone] == [(1, 2)]
    finally:
        projection.close()
