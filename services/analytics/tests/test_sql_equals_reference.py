"""Property: the SQL views over the DuckDB projection equal the pure-Python reference (facts.fold_all +
views.py), row by row, for random histories delivered in any order, in any batches, with duplicates — live and
`as_of` many moments (the reference then folds only the events recorded by that moment)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import sqlviews, views
from services.analytics.facts import fold_all
from services.analytics.metrics import Window, date_micros
from services.analytics.projection import SMALL_BATCH, Projection, run
from services.analytics.records import AnalyticsEvent
from services.analytics.views import GroupBy
from shared.testing.properties import every_or_some, examples

MIN = 60_000_000
DAY0 = date(2026, 3, 2)
BASE = date_micros(DAY0)
DEALERS = ["D1", "D2", None]
WINDOWS = [
    Window.of_dates(DAY0, DAY0 + timedelta(days=1)),
    Window.of_dates(DAY0 - timedelta(days=1), DAY0 + timedelta(days=6)),
]
REASONS = ["parts_unavailable", "customer_absent", None]
# The groupings each moment of an example is checked under: all of them in `make test`, three drawn in the fast tier.
GROUPINGS = every_or_some(GroupBy, 3)


@st.composite
def request_history(draw, n: int) -> list[AnalyticsEvent]:
    """The events of one request: any subset of the steps, at random times, recorded after random delays."""
    rid = f"R{n}"
    events: list[AnalyticsEvent] = []
    counter = iter(range(1000))

    def add(event_type: str, minute: int, *, job: str | None = None, request: str | None = rid, **data) -> None:
        delay = draw(st.sampled_from([0, 0, 30, 600, 3000]))  # equal recorded times happen, late syncs too
        events.append(
            AnalyticsEvent(
                f"{rid}-{next(counter)}",
                event_type,
                request,
                job,
                BASE + minute * MIN,
                BASE + (minute + delay) * MIN,
                draw(st.integers(1, 3)),
                data,
            )
        )

    minute = draw(st.integers(-600, 3000))
    dealer = draw(st.sampled_from(DEALERS))
    keys = dict(
        dealer_id=dealer,
        region=draw(st.sampled_from(["north", "south"])),
        product_line=draw(st.sampled_from(["baler", "mower"])),
    )
    if draw(st.integers(0, 9)):  # sometimes the request itself has not arrived
        add("service_request.received", minute, **keys)
    if draw(st.booleans()):
        add("service_request.escalated", minute + draw(st.integers(0, 100)))
    if draw(st.integers(0, 9)) == 0:
        add("service_request.cancelled", minute + draw(st.integers(0, 2000)))
    mode = draw(st.sampled_from(["phone", "onsite", "onsite", None]))
    if mode is not None:
        add("service_request.triaged", minute + draw(st.integers(0, 60)), mode=mode, priority="P2")
    for j in range(draw(st.integers(0, 2)) if mode != "phone" else 0):
        job = f"{rid}-J{j}"
        start = minute + draw(st.integers(0, 120))
        if draw(st.integers(0, 4)):
            add("job.created", start, job=job, mode="onsite", priority="P2", **keys)
        for a in range(draw(st.integers(0, 3))):
            add(
                "job.assigned",
                start + draw(st.integers(0, 300)),
                job=job,
                center_id=f"C{a % 2}",
                technician_id=draw(st.sampled_from(["T1", "T2", "T3"])),
            )
        if draw(st.booleans()):
            add("job.accepted", start + draw(st.integers(0, 400)), job=job, technician_id="T1")
        for _ in range(draw(st.integers(0, 2))):
            add("job.arrived", start + draw(st.integers(0, 900)), job=job, technician_id="T1")
        for _ in range(draw(st.integers(0, 2))):
            fixed = draw(st.booleans())
            data = {"technician_id": draw(st.sampled_from(["T1", "T2"])), "fixed": fixed}
            if not fixed:
                data["reason"] = draw(st.sampled_from(REASONS)) or "unspecified"
            add("job.completed", start + draw(st.integers(100, 2000)), job=job, **data)
        for kind in draw(st.lists(st.sampled_from(["accept", "arrive"]), max_size=2)):
            add("job.sla_breached", start + 240, job=job, kind=kind)
            if draw(st.booleans()):
                add("job.sla_breach_withdrawn", start + 300, job=job, kind=kind)
        for _ in range(draw(st.integers(0, 1))):
            add(
                "revisit.done",
                start + draw(st.integers(1000, 4000)),
                job=job,
                satisfaction=draw(st.integers(1, 5)),
                nps=draw(st.one_of(st.none(), st.integers(0, 10))),
            )
        if draw(st.integers(0, 3)) == 0:  # a complaint that names only the job
            add("complaint.opened", start + 500, job=job, request=None, complaint_id=f"K-{job}", dealer_id=None)
    if draw(st.integers(0, 3)) == 0:
        add("complaint.opened", minute + 50, complaint_id=f"K-{rid}", dealer_id=dealer)
    return events


@st.composite
def deliveries(draw) -> tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]]:
    """A history, and the batches it arrives in: shuffled across requests, some events twice."""
    events = [e for n in range(draw(st.integers(1, 6))) for e in draw(request_history(n))]
    duplicates = draw(st.lists(st.sampled_from(events), max_size=5)) if events else []
    arriving = draw(st.permutations(events + duplicates))
    batches, i = [], 0
    while i < len(arriving):
        size = draw(st.integers(1, 12))
        batches.append(arriving[i : i + size])
        i += size
    return events, batches


def reference(events: list[AnalyticsEvent], as_of: int | None, dealer: str | None):
    recorded = [e for e in events if as_of is None or e.recorded_at <= as_of]
    requests, revisits = fold_all(recorded)
    if dealer is not None:
        requests = [f for f in requests if f.dealer_id == dealer]
        revisits = [r for r in revisits if r.dealer_id == dealer]
    return requests, revisits


def moments(events: list[AnalyticsEvent], pick) -> list[int | None]:
    """Live, and a recorded moment: just before it and at it."""
    recorded = sorted({e.recorded_at for e in events})
    if not recorded:
        return [None]
    chosen = pick(st.sampled_from(recorded))
    return [None, chosen - 1, chosen]


def assert_views_equal(projection: Projection, events: list[AnalyticsEvent], pick) -> None:
    cur = projection.reader()
    tables = projection.active_tables(cur)
    dealer = pick(st.sampled_from([None, "D1"]))
    window = pick(st.sampled_from(WINDOWS))
    try:
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
    finally:
        cur.close()


@settings(
    max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@pytest.mark.timeout(600)
@given(deliveries(), st.data())
def test_the_sql_views_equal_the_reference_for_any_history_arrival_order_batching_and_duplicates(delivery, data):
    events, batches = delivery
    projection = Projection(":memory:")
    projection.small_batch = data.draw(st.sampled_from([0, SMALL_BATCH]), label="small batch")  # both ways
    try:
        new = sum(projection.apply(batch) for batch in batches)
        assert new == len(events)  # each event stored once, however often it came
        assert_views_equal(projection, events, data.draw)
    finally:
        projection.close()


@settings(
    max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(deliveries())
def test_folding_everything_at_once_gives_the_same_fact_versions_as_applying_batch_by_batch(delivery):
    events, batches = delivery
    live, bulk = Projection(":memory:"), Projection(":memory:")
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
