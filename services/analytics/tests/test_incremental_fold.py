"""Property: the live path's incremental fold (quotes and part requests included) (a request's versions resumed from the stored ones when its new
events come after them, a full refold when one comes late) leaves the fact tables exactly as one fold of the
whole history by the definition (`facts.fact_versions`: a fresh fold at every recorded moment) — for random
histories, in random arrival orders, in random batch splits, with duplicates."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from operator import itemgetter
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import facts
from services.analytics.projection import (
    REQUEST_COLUMNS,
    SMALL_BATCH,
    FactRows,
    Projection,
    event_batch,
    insert_arrow,
    own_events,
    read_back_rows,
)
from services.analytics.records import HANDLED_TYPES, AnalyticsEvent
from services.analytics.tests.histories import commerce_history, drawn_projection, in_batches, request_history
from services.analytics.tests.test_facts import event, job, received
from shared.testing.properties import examples

TABLES = ("requests", "revisits", "jobs")


def definition(events: list[AnalyticsEvent]) -> Projection:
    """A projection whose fact tables hold `facts.fact_versions` of every request of the whole history."""
    unique = list({e.event_id: e for e in events}.values())
    links = facts.job_requests_of(unique)
    owned: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    for e in unique:
        owner = facts.owning_request(e, links)
        if owner is not None and e.type in HANDLED_TYPES:
            owned[owner].append(e)
    rows = FactRows()
    for owner, mine in owned.items():
        rows.add(facts.fact_versions(owner, mine))
    projection = Projection(":memory:")
    cur = projection.reader()
    projection._append_facts(cur, projection.active_tables(cur), rows)
    cur.close()
    return projection


def fact_tables(projection: Projection) -> dict[str, list[tuple]]:
    cur = projection.reader()
    try:
        tables = projection.active_tables(cur)
        return {name: cur.execute(f"SELECT * FROM {getattr(tables, name)} ORDER BY ALL").fetchall() for name in TABLES}
    finally:
        cur.close()


@st.composite
def arrivals(draw) -> tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]]:
    """A history of a few requests and the batches it arrives in: mostly in recorded order (the live case, so
    the incremental path is taken) with some events moved earlier or later, or wholly shuffled; some twice."""
    events = [e for n in range(draw(st.integers(1, 5))) for e in draw(request_history(n)) + draw(commerce_history(n))]
    if draw(st.booleans()):
        arriving = draw(st.permutations(events))
    else:
        arriving = sorted(events, key=lambda e: (e.recorded_at, e.event_id))
        for _ in range(draw(st.integers(0, 3))):
            if len(arriving) > 1:
                moved = arriving.pop(draw(st.integers(0, len(arriving) - 1)))
                arriving.insert(draw(st.integers(0, len(arriving))), moved)
    arriving += draw(st.lists(st.sampled_from(events), max_size=4)) if events else []
    return events, in_batches(draw, arriving, 8)


@settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(arrivals(), st.data())
def test_batches_folded_incrementally_leave_the_fact_tables_of_one_fold_of_the_whole_history(arrival, data):
    events, batches = arrival
    live = drawn_projection(data.draw)  # small and catch-up batches, lookups by index scans and by table scans
    expected = definition(events)
    try:
        for batch in batches:
            live.apply(batch)
        assert fact_tables(live) == fact_tables(expected)
    finally:
        live.close()
        expected.close()


def test_events_arriving_in_recorded_order_resume_the_stored_versions_and_a_late_one_refolds_its_request():
    steps = [
        received(at=0),
        event("service_request.triaged", 8, mode="onsite", priority="P2"),
        job("job.created", 10, dealer_id="D1", region="north", product_line="baler"),
        job("job.assigned", 11, center_id="C1", technician_id="T1"),
        job("job.arrived", 100, technician_id="T1"),
        job("job.completed", 130, technician_id="T1", fixed=True),
    ]
    late = event("service_request.escalated", 5, recorded=20)  # recorded before the arrival already folded
    live = Projection(":memory:")
    try:
        for step in steps:
            live.apply([step])
        assert (live.folded.resumed, live.folded.replaced) == (len(steps), 0)
        live.apply([late])
        assert (live.folded.resumed, live.folded.replaced) == (len(steps), 1)
        expected = definition([*steps, late])
        assert fact_tables(live) == fact_tables(expected)
        expected.close()
    finally:
        live.close()


def test_a_complaint_naming_only_a_job_that_a_later_job_event_links_is_folded_into_the_request():
    complaint = event("complaint.opened", 50, None, "job-1", recorded=50, complaint_id="K1")
    steps = [received(at=0), complaint, job("job.assigned", 40, center_id="C1", technician_id="T1", recorded=60)]
    live = Projection(":memory:")
    try:
        for step in steps:
            live.apply([step])
        assert live.folded.replaced == 1  # the link made an older complaint the request's: refolded
        rows = fact_tables(live)["requests"]
        complaints = list(REQUEST_COLUMNS).index("complaints")
        assert [r[complaints] for r in rows if r[1] == facts.FOREVER] == [1]
        expected = definition(steps)
        assert rows == fact_tables(expected)["requests"]
        expected.close()
    finally:
        live.close()


def test_a_resumed_fold_reads_a_batch_s_events_as_stored_so_a_later_refold_keeps_its_versions():
    """The fold takes a batch's new events as the table stores them (`fact_rows.read_back_rows`): pyarrow may
    change a value on the way in (a float in an int64 column is truncated, in `data` as in the event's times), and
    a fold resumed from the events as they came would keep versions that a refold of the stored events does not."""
    first = received(at=10)
    # Recorded half a microsecond after the request: stored as recorded at the same moment (truncated).
    triage = replace(
        event("service_request.triaged", 12, mode="onsite", priority="P2"),
        recorded_at=cast(int, first.recorded_at + 0.5),
    )
    live = Projection(":memory:")
    try:
        live.apply([first])
        live.apply([triage])
        applied = fact_tables(live)
        with live.lock:
            live.refold(live.writer, live.active_tables(live.writer), [first.request_id or ""])
        assert applied == fact_tables(live)
    finally:
        live.close()


def test_a_batch_s_new_events_are_folded_as_the_stored_events_are_read_back():
    # 4.5 in an int64 column: pyarrow stores 4, and the fold must read 4 too.
    events = [received(), job("revisit.done", 150, satisfaction=4.5, nps=9), job("job.arrived", 100)]
    projection = Projection(":memory:")
    try:
        batch = event_batch(events, 1)
        with projection.lock:
            cur = projection.writer
            tables = projection.active_tables(cur)
            insert_arrow(cur, tables.events, batch)
            stored = own_events(cur, tables, [events[0].request_id or ""], SMALL_BATCH)
        assert sorted(read_back_rows(batch), key=itemgetter(1)) == sorted(stored, key=itemgetter(1))
    finally:
        projection.close()
