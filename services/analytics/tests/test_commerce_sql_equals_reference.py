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
from services.analytics.projection import Projection
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.test_process_sql_equals_reference import assert_process_views_equal, reference_trails
from services.analytics.tests.test_sql_equals_reference import BASE, GROUPINGS, MIN, WINDOWS, moments, request_history
from shared.testing.properties import examples

PARTS = ["P-BELT", "P-PUMP", "P-SEAL"]


@st.composite
def commerce_history(draw, n: int) -> list[AnalyticsEvent]:
    """Quotes (some replaced, accepted, declined, expired, an expiry withdrawn) and part requests (served from
    the van, reserved elsewhere, backordered; shipped and received or not) of request `R{n}` and its jobs."""
    rid = f"R{n}"
    events: list[AnalyticsEvent] = []
    counter = iter(range(1000))

    def add(event_type: str, minute: int, job: str | None = None, **data) -> None:
        delay = draw(st.sampled_from([0, 0, 30, 600, 3000]))
        events.append(
            AnalyticsEvent(
                f"{rid}-c{next(counter)}",
                event_type,
                rid,
                job,
                BASE + minute * MIN,
                BASE + (minute + delay) * MIN,
                draw(st.integers(1, 3)),
                data,
            )
        )

    minute = draw(st.integers(-600, 3000))
    if draw(st.booleans()):
        add("service_request.quote_required", minute + draw(st.integers(0, 60)))
    for q in range(draw(st.integers(0, 2))):
        quote = f"{rid}-Q{q}"
        issued_at = minute + draw(st.integers(0, 600))
        total = draw(st.sampled_from(["120.00", "89.50", "1234.05", "0.99"]))
        currency = draw(st.sampled_from(["EUR", "EUR", "USD"]))
        if draw(st.integers(0, 5)):
            add("service_request.quote_issued", issued_at, quote_id=quote, total=total, currency=currency)
        outcome = draw(st.sampled_from(["accepted", "declined", "expired", "late_accepted", None]))
        decided = issued_at + draw(st.integers(0, 3000))
        if outcome in ("accepted", "late_accepted"):
            add("service_request.quote_accepted", decided, quote_id=quote, total=total, currency=currency)
        if outcome == "declined":
            add("service_request.quote_declined", decided, quote_id=quote)
        if outcome in ("expired", "late_accepted"):
            add("service_request.quote_expired", issued_at + 2880, quote_id=quote)
        if outcome == "late_accepted" and draw(st.booleans()):
            add("service_request.quote_expiry_withdrawn", issued_at + 2880, quote_id=quote)
    for p in range(draw(st.integers(0, 3))):
        job, part_request = f"{rid}-J{draw(st.integers(0, 1))}", f"{rid}-PR{p}"
        part = draw(st.sampled_from(PARTS))
        asked = minute + draw(st.integers(0, 2000))
        ids = {"part_request_id": part_request, "part_number": part}
        served = draw(st.sampled_from(["van", "center", "warehouse", "backordered", None]))
        if served == "backordered":
            add("part_request.backordered", asked, job, **ids)
            if draw(st.booleans()):
                add("part_request.reserved", asked + draw(st.integers(0, 900)), job, **ids, location_kind="warehouse")
        elif served is not None:
            add("part_request.reserved", asked, job, **ids, location_kind=served)
        if served != "van" and draw(st.booleans()):
            add("part_request.received", asked + draw(st.integers(0, 3000)), job, **ids)
    return events


@st.composite
def deliveries(draw) -> tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]]:
    events = [e for n in range(draw(st.integers(1, 6))) for e in draw(request_history(n)) + draw(commerce_history(n))]
    duplicates = draw(st.lists(st.sampled_from(events), max_size=5)) if events else []
    arriving = draw(st.permutations(events + duplicates))
    batches, i = [], 0
    while i < len(arriving):
        size = draw(st.integers(1, 12))
        batches.append(arriving[i : i + size])
        i += size
    return events, batches


@settings(
    max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@pytest.mark.timeout(600)
@given(deliveries(), st.data())
def test_paid_service_and_part_waits_in_sql_equal_the_reference_for_any_history_order_batching_and_duplicates(
    delivery, data
):
    events, batches = delivery
    projection = Projection(":memory:")
    try:
        assert sum(projection.apply(batch) for batch in batches) == len(events)
        cur = projection.reader()
        tables = projection.active_tables(cur)
        dealer = data.draw(st.sampled_from([None, "D1"]))
        window = data.draw(st.sampled_from(WINDOWS))
        try:
            for as_of in moments(events, data.draw):
                trails = reference_trails(events, as_of, dealer)
                for group_by in data.draw(GROUPINGS):
                    args = (cur, tables, window, group_by, as_of, dealer)
                    assert commerce_sql.paid_service_rows(*args) == commerce_views.paid_service_rows(
                        trails, window, group_by
                    )
                    assert commerce_sql.part_wait_rows(*args) == commerce_views.part_wait_rows(trails, window, group_by)
        finally:
            cur.close()
        # The hand-offs (with the added steps), rework, variants and findings over the same histories.
        assert_process_views_equal(projection, events, data.draw)
    finally:
        projection.close()
