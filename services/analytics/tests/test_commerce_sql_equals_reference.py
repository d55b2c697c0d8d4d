"""Property: paid service and waiting for parts — the process view's added steps (quoting, the customer's
decision, the parts wait) and the paid-service and part-wait views — computed in SQL over the DuckDB facts equal
the pure reference (`commerce.py`, `commerce_views.py`, `process.py`) row by row, for random histories of
quotes and part requests beside the repair chain, delivered in any order, in any batches, with duplicates, live
and `as_of` random recorded moments, for every key and for one dealer's scope."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import commerce_sql, commerce_views
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import (
    GROUPINGS,
    WINDOWS,
    commerce_history,
    delivered,
    moments,
    projected,
    request_history,
)
from services.analytics.tests.test_process_sql_equals_reference import assert_process_views_equal, reference_trails
from shared.testing.properties import examples


@st.composite
def deliveries(draw) -> tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]]:
    histories = [draw(request_history(n)) + draw(commerce_history(n)) for n in range(draw(st.integers(1, 6)))]
    return delivered(draw, [e for history in histories for e in history])


@settings(
    max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@pytest.mark.timeout(600)
@given(deliveries(), st.data())
def test_paid_service_and_part_waits_in_sql_equal_the_reference_for_any_history_order_batching_and_duplicates(
    delivery, data
):
    events, _ = delivery
    with projected(delivery, data.draw) as projection:
        dealer = data.draw(st.sampled_from([None, "D1"]))
        window = data.draw(st.sampled_from(WINDOWS))
        with projection.reading() as (cur, tables):
            for as_of in moments(events, data.draw):
                trails = reference_trails(events, as_of, dealer)
                for group_by in data.draw(GROUPINGS):
                    args = (cur, tables, window, group_by, as_of, dealer)
                    assert commerce_sql.paid_service_rows(*args) == commerce_views.paid_service_rows(
                        trails, window, group_by
                    )
                    assert commerce_sql.part_wait_rows(*args) == commerce_views.part_wait_rows(trails, window, group_by)
        # The hand-offs (with the added steps), rework, variants and findings over the same histories.
        assert_process_views_equal(projection, events, data.draw)
