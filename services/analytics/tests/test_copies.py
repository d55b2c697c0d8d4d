"""A copy of an event (a redelivery, a record its producer wrote twice) is stored and counted once, whichever way
the live path finds it (`Projection._stored_copies`): among the stored events of the requests a batch names, read
before the insert and folded with the new events; by its id for an event naming no request; inside the batch
itself. Each case three ways: a small batch (lookups of constants) answered from the request index and by table
scans, and a catch-up's batch (hash joins)."""

from __future__ import annotations

from contextlib import closing

import pytest

from services.analytics.projection import SMALL_BATCH, Projection
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import INDEX_SCAN_COUNTS, fresh_projection
from services.analytics.tests.test_facts import event, history, job, received
from services.analytics.tests.test_incremental_fold import definition, fact_tables

# A small batch with its lookups answered from the request index (as at scale) and by table scans (the tests'
# tiny tables under the projection's own setting), and a catch-up's batch (hash joins).
EVERY_WAY = pytest.mark.parametrize(
    "small_batch, index_scan_max_count",
    [(SMALL_BATCH, INDEX_SCAN_COUNTS[1]), (SMALL_BATCH, INDEX_SCAN_COUNTS[0]), (0, INDEX_SCAN_COUNTS[0])],
    ids=["small batch, index scans", "small batch, table scans", "catch-up batch"],
)


def live(small_batch: int, index_scan_max_count: int) -> Projection:
    return fresh_projection(small_batch, index_scan_max_count)


def stored(projection: Projection) -> tuple[int, int]:
    """(events stored, distinct event ids among them)."""
    cur = projection.reader()
    try:
        table = projection.active_tables(cur).events
        count, distinct = cur.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {table}").fetchall()[0]
        return count, distinct
    finally:
        cur.close()


def assert_folded_as_the_definition(projection: Projection, events: list[AnalyticsEvent]) -> None:
    expected = definition(events)
    try:
        assert fact_tables(projection) == fact_tables(expected)
    finally:
        expected.close()


@EVERY_WAY
def test_a_redelivered_batch_mixing_stored_and_new_events_stores_and_folds_only_the_new_ones(
    small_batch, index_scan_max_count
):
    events = history()
    first, rest = events[:6], events[6:]
    with closing(live(small_batch, index_scan_max_count)) as projection:
        assert projection.apply(first) == len(first)
        assert projection.apply(first + rest) == len(rest)  # the first six again, then the rest
        assert projection.apply(events) == 0
        assert stored(projection) == (len(events), len(events))
        assert_folded_as_the_definition(projection, events)


@EVERY_WAY
def test_copies_inside_one_batch_count_once(small_batch, index_scan_max_count):
    events = history()
    with closing(live(small_batch, index_scan_max_count)) as projection:
        assert projection.apply(events + events[::-1]) == len(events)
        assert stored(projection) == (len(events), len(events))
        assert_folded_as_the_definition(projection, events)


@EVERY_WAY
def test_a_complaint_naming_no_request_redelivered_with_new_events_is_stored_once(small_batch, index_scan_max_count):
    complaint = event("complaint.opened", 3100, None, "job-1", complaint_id="K1")
    before = [received(), job("job.created", 10), job("job.assigned", 11, center_id="C1", technician_id="T1")]
    later = [job("job.arrived", 100, technician_id="T1"), job("job.completed", 130, technician_id="T1", fixed=True)]
    events = [*before, complaint, *later]
    with closing(live(small_batch, index_scan_max_count)) as projection:
        assert projection.apply(before) == len(before)
        assert projection.apply([complaint]) == 1
        assert projection.apply([complaint, *later, complaint]) == len(later)
        assert projection.apply([complaint]) == 0
        assert stored(projection) == (len(events), len(events))
        assert_folded_as_the_definition(projection, events)


@EVERY_WAY
def test_a_copy_of_an_event_stored_many_batches_earlier_is_recognised(small_batch, index_scan_max_count):
    events: list[AnalyticsEvent] = []
    with closing(live(small_batch, index_scan_max_count)) as projection:
        for n in range(40):  # forty requests, a batch each, each recorded a day after the one before
            batch = [
                received(at=n * 1440, request_id=f"R{n}"),
                event("service_request.triaged", n * 1440 + 5, f"R{n}", mode="onsite", priority="P2"),
            ]
            assert projection.apply(batch) == 2
            events += batch
        fresh = [received(at=40 * 1440, request_id="R40")]
        assert projection.apply([events[0], events[1], *fresh, events[-1]]) == 1  # the very first ones again
        events += fresh
        assert stored(projection) == (len(events), len(events))
        assert_folded_as_the_definition(projection, events)


@EVERY_WAY
def test_a_batch_that_reaches_a_request_only_through_a_complaint_on_its_job_folds_it_with_the_others(
    small_batch, index_scan_max_count
):
    # R is stored with its job; the batch names R2 and a complaint naming only R's job (so R is read after the
    # insert, R2 before it), and is then redelivered whole.
    r = [received(), job("job.created", 10), job("job.assigned", 11, center_id="C1", technician_id="T1")]
    complaint = event("complaint.opened", 200, None, "job-1", complaint_id="K1")
    r2 = [received(at=5, request_id="R2"), event("service_request.escalated", 6, "R2")]
    with closing(live(small_batch, index_scan_max_count)) as projection:
        assert projection.apply(r) == len(r)
        assert projection.apply([*r2, complaint]) == 3
        assert projection.apply([complaint, *r2, r[0]]) == 0
        events = [*r, *r2, complaint]
        assert stored(projection) == (len(events), len(events))
        assert_folded_as_the_definition(projection, events)


@EVERY_WAY
def test_a_batch_naming_more_requests_than_duckdb_pushes_into_an_index_finds_their_copies_and_events(
    small_batch, index_scan_max_count
):
    # 60 requests: more keys than DuckDB turns from a list into an index lookup by itself (50), under SMALL_BATCH.
    received_ = [received(at=n, request_id=f"R{n}") for n in range(60)]
    triaged = [event("service_request.triaged", 30 + n, f"R{n}", mode="onsite", priority="P2") for n in range(60)]
    with closing(live(small_batch, index_scan_max_count)) as projection:
        assert projection.apply(received_) == 60
        assert projection.apply([*triaged, *received_[::2]]) == 60
        events = [*received_, *triaged]
        assert stored(projection) == (len(events), len(events))
        assert_folded_as_the_definition(projection, events)
