"""Histories of analytics events for the tests: random ones for the property tests (hypothesis strategies: the
events of a request's repair chain, of its quotes and part requests, and the batches a history arrives in, over
which the SQL views, the live fold and the process view are held equal to their references) and the single
events the hand-computed tests write (`event_at`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

from services.analytics.metrics import Window, date_micros
from services.analytics.projection import SMALL_BATCH, Projection, run
from services.analytics.records import AnalyticsEvent
from services.analytics.views import GroupBy
from shared.testing.properties import every_or_some

MIN = 60_000_000
DAY0 = date(2026, 3, 2)
BASE = date_micros(DAY0)
DEALERS = ["D1", "D2", None]
WINDOWS = [
    Window.of_dates(DAY0, DAY0 + timedelta(days=1)),
    Window.of_dates(DAY0 - timedelta(days=1), DAY0 + timedelta(days=6)),
]
REASONS = ["parts_unavailable", "customer_absent", None]
PARTS = ["P-BELT", "P-PUMP", "P-SEAL"]
# The groupings each moment of an example is checked under: all of them in `make test`, three drawn in the fast tier.
GROUPINGS = every_or_some(GroupBy, 3)


def event_at(
    event_type: str,
    at: float,
    request_id: str | None,
    job_id: str | None = None,
    recorded: float | None = None,
    **data: Any,
) -> AnalyticsEvent:
    """An event `at` minutes after the epoch, recorded then unless `recorded` (minutes) says otherwise; version 1."""
    return AnalyticsEvent(
        str(uuid.uuid4()),
        event_type,
        request_id,
        job_id,
        int(at * MIN),
        int((recorded if recorded is not None else at) * MIN),
        1,
        data,
    )


def recorded_late(
    draw: st.DrawFn,
    event_id: str,
    event_type: str,
    request_id: str | None,
    job_id: str | None,
    minute: int,
    data: dict[str, Any],
) -> AnalyticsEvent:
    """An event at `minute` after BASE, recorded after a random delay (none twice as often: equal recorded times
    happen; late syncs too), of a random version."""
    delay = draw(st.sampled_from([0, 0, 30, 600, 3000]))
    return AnalyticsEvent(
        event_id,
        event_type,
        request_id,
        job_id,
        BASE + minute * MIN,
        BASE + (minute + delay) * MIN,
        draw(st.integers(1, 3)),
        data,
    )


@st.composite
def request_history(draw, n: int) -> list[AnalyticsEvent]:
    """The events of one request: any subset of the steps, at random times, recorded after random delays."""
    rid = f"R{n}"
    events: list[AnalyticsEvent] = []
    counter = iter(range(1000))

    def add(event_type: str, minute: int, *, job: str | None = None, request: str | None = rid, **data) -> None:
        events.append(recorded_late(draw, f"{rid}-{next(counter)}", event_type, request, job, minute, data))

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
def commerce_history(draw, n: int) -> list[AnalyticsEvent]:
    """Quotes (some replaced, accepted, declined, expired, an expiry withdrawn) and part requests (served from
    the van, reserved elsewhere, backordered; shipped and received or not) of request `R{n}` and its jobs."""
    rid = f"R{n}"
    events: list[AnalyticsEvent] = []
    counter = iter(range(1000))

    def add(event_type: str, minute: int, job: str | None = None, **data) -> None:
        events.append(recorded_late(draw, f"{rid}-c{next(counter)}", event_type, rid, job, minute, data))

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


def in_batches(draw: st.DrawFn, arriving: Sequence[AnalyticsEvent], largest: int) -> list[list[AnalyticsEvent]]:
    """`arriving` cut, in its order, into batches of 1 to `largest` events."""
    batches, i = [], 0
    while i < len(arriving):
        size = draw(st.integers(1, largest))
        batches.append(list(arriving[i : i + size]))
        i += size
    return batches


def delivered(draw: st.DrawFn, events: list[AnalyticsEvent]) -> tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]]:
    """`events`, and the batches they arrive in: shuffled across requests, some events twice."""
    duplicates = draw(st.lists(st.sampled_from(events), max_size=5)) if events else []
    return events, in_batches(draw, draw(st.permutations(events + duplicates)), 12)


# A batch's lookups both ways, as production takes them: DuckDB answers a lookup of constants (`projection.one_of`)
# from the request index when fewer rows match than `index_scan_max_count` or 0.1 % of the table
# (`projection.INDEX_SCANS`). The tests' tables are tiny: with the projection's 0 every lookup scans its table;
# with 10**9 each one scans the index, as a small batch does on a year of history (`test_batch_lookups` checks the
# plans). The setting is global to the DuckDB instance: set on the writer, it holds for every cursor.
INDEX_SCAN_COUNTS = [0, 10**9]
# A projection's `small_batch` both ways: SMALL_BATCH (the tests' batches are small: lookups of constants) and 0
# (every batch takes a catch-up's hash joins).
SMALL_BATCHES = [SMALL_BATCH, 0]


def fresh_projection(small_batch: int | None = None, index_scan_max_count: int | None = None) -> Projection:
    """An empty in-memory projection with `small_batch` and DuckDB's `index_scan_max_count` set, when given."""
    projection = Projection(":memory:")
    if small_batch is not None:
        projection.small_batch = small_batch
    if index_scan_max_count is not None:
        run(projection.writer, f"SET index_scan_max_count = {int(index_scan_max_count)}")
    return projection


def drawn_projection(draw: st.DrawFn) -> Projection:
    """`fresh_projection` with its batch threshold and DuckDB's index scan threshold drawn (both ways each)."""
    return fresh_projection(
        draw(st.sampled_from(SMALL_BATCHES), label="small batch"),
        draw(st.sampled_from(INDEX_SCAN_COUNTS), label="index_scan_max_count"),
    )


@contextmanager
def projected(
    delivery: tuple[list[AnalyticsEvent], list[list[AnalyticsEvent]]], draw: st.DrawFn
) -> Iterator[Projection]:
    """A fresh in-memory projection (`drawn_projection`) that applied a delivery's batches, each event stored once
    however often it came; closed on the way out."""
    events, batches = delivery
    projection = drawn_projection(draw)
    try:
        assert sum(projection.apply(batch) for batch in batches) == len(events)
        yield projection
    finally:
        projection.close()


def moments(events: list[AnalyticsEvent], pick) -> list[int | None]:
    """Live, and a recorded moment: just before it and at it."""
    recorded = sorted({e.recorded_at for e in events})
    if not recorded:
        return [None]
    chosen = pick(st.sampled_from(recorded))
    return [None, chosen - 1, chosen]
