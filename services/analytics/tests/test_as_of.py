"""`as_of`: the numbers as they stood at a past moment, from the events recorded by then — so a step a
technician synced days later restates the past, and the restatement shows."""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import unique
from shared.clock import rfc3339, utcnow
from shared.testing.kafka import publish


async def test_a_late_synced_visit_restates_resolution_and_sla_as_of_before_and_after_it_was_recorded(
    analytics, event_bus
):
    dealer, tech = unique("D"), unique("T")
    keys = dict(dealer_id=dealer, region=unique("hills"), product_line="harvester")
    request_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    t0 = (utcnow() - timedelta(days=6)).replace(hour=8, minute=0, second=0, microsecond=0)
    due = t0 + timedelta(hours=4)
    await publish(
        event_bus,
        ev.received(request_id, t0, **keys, recorded_at=t0),
        ev.triaged(request_id, t0 + timedelta(minutes=10), recorded_at=t0 + timedelta(minutes=10)),
        ev.job_created(job_id, request_id, t0 + timedelta(minutes=10), **keys, recorded_at=t0 + timedelta(minutes=10)),
        ev.assigned(
            job_id,
            request_id,
            t0 + timedelta(minutes=10),
            center_id=unique("C"),
            technician_id=tech,
            recorded_at=t0 + timedelta(minutes=10),
        ),
        # The timer saw no arrival by the deadline ...
        ev.breached(job_id, request_id, due, recorded_at=due),
        # ... the completion synced a day later, the arrival (before the deadline) two days later.
        ev.completed(job_id, request_id, t0 + timedelta(hours=5), tech, fixed=True, recorded_at=t0 + timedelta(days=1)),
        ev.arrived(job_id, request_id, t0 + timedelta(hours=3), tech, recorded_at=t0 + timedelta(days=2)),
        ev.breach_withdrawn(
            job_id, request_id, due, t0 + timedelta(days=2), recorded_at=t0 + timedelta(days=2, seconds=1)
        ),
    )
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=1)).date().isoformat()}
    live = await analytics.rows_when("throughput", lambda r: r.get(dealer, {}).get("sla_met_pct") == 100.0, **window)

    async def as_of(moment):
        return (await analytics.rows("throughput", as_of=rfc3339(moment), **window)).get(dealer)

    assert await as_of(t0 - timedelta(seconds=1)) is None
    before_completion = await as_of(t0 + timedelta(hours=12))
    assert (before_completion["received"], before_completion["resolved"], before_completion["backlog"]) == (1, 0, 1)
    assert before_completion["sla_met_pct"] is None and before_completion["median_minutes_to_resolve"] is None

    completed_not_arrived = await as_of(t0 + timedelta(days=1, hours=1))
    assert (completed_not_arrived["resolved"], completed_not_arrived["backlog"]) == (1, 0)
    assert completed_not_arrived["sla_met_pct"] == 0.0
    assert completed_not_arrived["median_minutes_to_arrive"] is None
    assert completed_not_arrived["median_minutes_to_resolve"] == 300.0

    restated = await as_of(t0 + timedelta(days=3))
    assert restated["sla_met_pct"] == 100.0 and restated["median_minutes_to_arrive"] == 180.0
    assert restated == live[dealer]
    scorecard_then = (await analytics.rows("scorecard", as_of=rfc3339(t0 + timedelta(days=1, hours=1)), **window))[
        dealer
    ]
    assert scorecard_then == {
        "key": dealer,
        "sla_met_pct": 0.0,
        "first_time_fix_pct": 100.0,
        "csat_pct": None,
        "score": 30.0,
    }


async def test_as_of_now_gives_the_live_numbers_for_every_view_and_grouping(analytics, event_bus):
    dealer, center, tech = unique("D"), unique("C"), unique("T")
    keys = dict(dealer_id=dealer, region=unique("coast"), product_line=unique("line"))
    t0 = (utcnow() - timedelta(days=3)).replace(hour=6, minute=0, second=0, microsecond=0)
    events = []
    for i in range(5):
        rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
        start = t0 + timedelta(hours=i * 7)
        events += [
            ev.received(rid, start, **keys),
            ev.triaged(rid, start + timedelta(minutes=3 + i)),
            ev.job_created(jid, rid, start + timedelta(minutes=3 + i), **keys),
            ev.assigned(jid, rid, start + timedelta(minutes=4 + i), center_id=center, technician_id=tech),
        ]
        if i < 4:
            events += [
                ev.arrived(jid, rid, start + timedelta(minutes=60 * i + 7), tech),
                ev.completed(jid, rid, start + timedelta(minutes=60 * i + 50), tech, fixed=i != 1),
                ev.revisit(jid, rid, start + timedelta(hours=20), 5 - i, 10 - 3 * i),
                ev.complaint(start + timedelta(hours=21), job_id=jid),
            ]
    await publish(event_bus, *events)
    window = {"from_": t0.date().isoformat(), "to": (t0 + timedelta(days=3)).date().isoformat()}
    await analytics.rows_when(
        "satisfaction", lambda r: r.get(dealer, {}).get("responses") == 4, group_by="dealer", **window
    )
    await analytics.rows_when(
        "throughput", lambda r: r.get(dealer, {}).get("complaint_rate_pct") == 80.0, group_by="dealer", **window
    )
    later = rfc3339(utcnow() + timedelta(minutes=1))
    mine = set(keys.values()) | {center, tech}
    for view in ("throughput", "satisfaction", "scorecard"):
        for group_by in ("dealer", "center", "technician", "region", "product_line"):
            live = await analytics.rows(view, group_by=group_by, **window)
            then = await analytics.rows(view, group_by=group_by, as_of=later, **window)
            assert {k: v for k, v in then.items() if k in mine} == {k: v for k, v in live.items() if k in mine}
            assert any(k in mine for k in live), (view, group_by)
        headers = analytics.auth("dealer", dealer_id=dealer)
        for group_by in ("day", "month", "all"):
            live = await analytics.get(view, headers=headers, group_by=group_by, **window)
            then = await analytics.get(view, headers=headers, group_by=group_by, as_of=later, **window)
            assert then.json() == live.json() and live.json()["rows"], (view, group_by)
