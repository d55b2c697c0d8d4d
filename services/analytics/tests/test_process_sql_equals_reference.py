"""Property: the process view's SQL over the DuckDB facts (`process_sql`) equals the pure reference
(`process.py` over the stored events) row by row — hand-offs, rework, variants and findings, for random
histories delivered in any order, in any batches, with duplicates, live and `as_of` random recorded moments,
for every key and for one dealer's scope."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import ordered_durations, process, process_sql
from services.analytics.process import FindingRules, process_trails
from services.analytics.projection import Projection
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import (
    BASE,
    GROUPINGS,
    MIN,
    WINDOWS,
    delivered,
    moments,
    projected,
    request_history,
)
from services.analytics.views import GroupBy
from shared.testing.properties import examples

# Tight enough rules that random histories raise every kind of finding.
RULES = FindingRules(handoff_targets={"triage": 15, "repair": 300}, peer_min_requests=2, peer_margin_minutes=1)


@st.composite
def deliveries(draw) -> tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]]:
    """Histories of a few requests, some complaints reopened later (by an event naming only the complaint),
    delivered shuffled, in random batches, some events twice."""
    events = [e for n in range(draw(st.integers(1, 8))) for e in draw(request_history(n))]
    complaints = sorted({e.data["complaint_id"] for e in events if e.type == "complaint.opened"})
    for complaint_id in complaints:
        for _ in range(draw(st.integers(0, 2))):
            minute, delay = draw(st.integers(0, 4000)), draw(st.sampled_from([0, 10, 3000]))
            events.append(
                AnalyticsEvent(
                    f"{complaint_id}-reopened-{minute}-{delay}",
                    "complaint.reopened",
                    None,
                    None,
                    BASE + minute * MIN,
                    BASE + (minute + delay) * MIN,
                    1,
                    {"complaint_id": complaint_id},
                )
            )
    return delivered(draw, list({e.event_id: e for e in events}.values()))


def reference_trails(events: list[AnalyticsEvent], as_of: int | None, dealer: str | None):
    trails = process_trails(process.recorded_by(events, as_of))
    return [t for t in trails if dealer is None or t.request.dealer_id == dealer]


def assert_process_views_equal(projection: Projection, events: list[AnalyticsEvent], pick) -> None:
    dealer = pick(st.sampled_from([None, "D1"]))
    window = pick(st.sampled_from(WINDOWS))
    with projection.reading() as (cur, tables):
        for as_of in moments(events, pick):
            trails = reference_trails(events, as_of, dealer)
            for group_by in pick(GROUPINGS):
                args = (cur, tables, window, group_by, as_of, dealer)
                assert process_sql.handoff_rows(*args) == process.handoff_rows(trails, window, group_by)
                assert process_sql.rework_rows(*args) == process.rework_rows(trails, window, group_by)
                assert process_sql.variant_rows(*args) == process.variant_rows(trails, window, group_by)
                assert process_sql.finding_rows(*args, rules=RULES) == process.finding_rows(
                    trails, window, group_by, RULES
                )


@settings(
    max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@pytest.mark.timeout(600)
@given(deliveries(), st.data())
def test_the_process_sql_equals_the_reference_for_any_history_arrival_order_batching_and_duplicates(delivery, data):
    with projected(delivery, data.draw) as projection:
        assert_process_views_equal(projection, delivery[0], data.draw)


@settings(
    max_examples=examples(10), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@pytest.mark.timeout(600)
@given(deliveries(), st.data())
def test_the_findings_equal_the_reference_when_no_step_can_be_encoded_for_numpy(delivery, data):
    """Every step through the dense ranks (`ordered_durations.DenseRanks`), which the findings take for a step
    whose durations lie too far apart to encode as key × span + duration in 64 bits."""
    events, pick = delivery[0], data.draw
    with mock.patch.object(ordered_durations, "LARGEST_ENCODED", 0), projected(delivery, pick) as projection:
        dealer, window = pick(st.sampled_from([None, "D1"])), pick(st.sampled_from(WINDOWS))
        with projection.reading() as (cur, tables):
            for as_of in moments(events, pick):
                trails = reference_trails(events, as_of, dealer)
                for group_by in (GroupBy.dealer, GroupBy.technician):
                    assert process_sql.finding_rows(cur, tables, window, group_by, as_of, dealer, rules=RULES) == (
                        process.finding_rows(trails, window, group_by, RULES)
                    )
