"""Paid service and waiting for parts over HTTP on the running service (the session's event bus, the DuckDB
projection; the chain through real Kafka is test_paid_parts_end_to_end): a
quote accepted (its job waits for a backordered part), one declined, one expired, and one whose expiry a
late-synced acceptance withdrew — the hand-offs show the quoting, the customer's decision and the parts wait
with numbers worked out by hand, the paid-service view the acceptance rate and the revenue, the part-waits view
the part that made the job wait; `as_of` before the late sync restates them; each equals the reference over
the same events; a dealer sees its own; bad input is a 4xx naming the field."""

from __future__ import annotations

from datetime import timedelta

from services.analytics.commerce_views import paid_service_rows, part_wait_rows
from services.analytics.metrics import Window
from services.analytics.process import handoff_rows, process_trails
from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import unique
from services.analytics.tests.test_process_http import reference
from services.analytics.views import GroupBy
from shared.clock import rfc3339, utcnow
from shared.testing.app import eventually
from shared.testing.kafka import publish


def paid_requests(dealer: str, t0):
    """Four paid requests of one dealer received at t0; returns their envelopes and the moment the late
    acceptance synced."""
    keys = dict(dealer_id=dealer, region=unique("r"), product_line="washer")
    at = {m: t0 + timedelta(minutes=m) for m in range(0, 3 * 24 * 60)}
    synced = t0 + timedelta(hours=52)
    accepted, declined, expired, withdrawn = (unique("R") for _ in range(4))
    job, part_a, part_b = unique("J"), unique("P-A"), unique("P-B")
    envelopes = []
    for rid in (accepted, declined, expired, withdrawn):
        envelopes += [
            ev.received(rid, t0, **keys, recorded_at=t0),
            ev.triaged(rid, at[10], recorded_at=at[10]),
            ev.quote_required(rid, at[10], recorded_at=at[10]),
        ]
    envelopes += [
        # accepted after 200 min of the customer's; the job's compressor waits 24 h on backorder; a belt from the van
        ev.quote_issued(accepted, "Q1", at[40], "250.00", recorded_at=at[40]),
        ev.quote_accepted(accepted, "Q1", at[240], "250.00", recorded_at=at[240]),
        ev.job_created(job, accepted, at[240], **keys, recorded_at=at[240]),
        ev.assigned(job, accepted, at[250], center_id="C1", technician_id="T1", recorded_at=at[250]),
        ev.accepted(job, accepted, at[260], "T1", recorded_at=at[260]),
        ev.arrived(job, accepted, at[300], "T1", recorded_at=at[300]),
        ev.part_backordered(job, accepted, unique("PR"), part_a, at[360], recorded_at=at[360]),
        ev.part_reserved(job, accepted, unique("PR"), part_b, at[365], kind="van", recorded_at=at[365]),
        ev.completed(job, accepted, at[1860], "T1", fixed=True, recorded_at=at[1860]),
    ]
    backordered = envelopes[-3]
    envelopes.insert(-1, ev.part_received(job, accepted, backordered.subject, part_a, at[1800], recorded_at=at[1800]))
    envelopes.insert(-1, ev.part_reserved(job, accepted, backordered.subject, part_a, at[1000], kind="warehouse"))
    envelopes += [
        ev.quote_issued(declined, "Q2", at[60], "99.00", recorded_at=at[60]),
        ev.quote_declined(declined, "Q2", at[180], recorded_at=at[180]),
        ev.quote_issued(expired, "Q3", at[120], "120.00", recorded_at=at[120]),
        ev.quote_expired(expired, "Q3", at[3000], recorded_at=at[3000]),
        # accepted at 49 h on a dealer's offline device, synced at 52 h after the timer expired it at 50 h
        ev.quote_issued(withdrawn, "Q4", at[120], "80.00", recorded_at=at[120]),
        ev.quote_expired(withdrawn, "Q4", at[3000], recorded_at=at[3000]),
        ev.quote_expiry_withdrawn(withdrawn, "Q4", synced, at[2940], recorded_at=synced),
        ev.quote_accepted(withdrawn, "Q4", at[2940], "80.00", recorded_at=synced),
    ]
    return envelopes, synced, (part_a, part_b)


async def test_quotes_decided_every_way_and_a_part_on_backorder_show_in_the_views_as_worked_out_by_hand(
    analytics, event_bus
):
    mine, other = unique("D"), unique("D")
    t0 = (utcnow() - timedelta(days=4)).replace(hour=7, minute=0, second=0, microsecond=0)
    envelopes, synced, (part_a, part_b) = paid_requests(mine, t0)
    others, _, _ = paid_requests(other, t0)
    await publish(event_bus, *envelopes, *others)
    window = {"from_": t0.date().isoformat(), "to": (t0 + timedelta(days=1)).date().isoformat()}

    async def handoffs() -> dict[tuple[str, str], dict]:
        rows = (await analytics.get("handoffs", group_by="dealer", **window)).json()["rows"]
        return {(r["key"], r["step"]): r for r in rows if r["key"] in (mine, other)}

    def complete(rows: dict) -> bool:  # the three topics are consumed each at its own pace: wait for all of them
        return all(
            rows.get((dealer, "repair"), {}).get("count") == 1
            and rows.get((dealer, "parts_wait"), {}).get("count") == 1
            and rows.get((dealer, "customer_decision"), {}).get("total_minutes") == 6020.0
            for dealer in (mine, other)
        )

    await eventually(handoffs, until=complete, timeout=30)
    paid = await analytics.rows_when(
        "paid-service",
        lambda r: r.get(mine, {}).get("accepted") == 2 and r.get(other, {}).get("accepted") == 2,
        group_by="dealer",
        **window,
    )
    assert paid[mine] == {
        "key": mine,
        "currency": "EUR",
        "quotes_issued": 4,
        "accepted": 2,
        "declined": 1,
        "expired": 1,  # the withdrawn expiry does not count
        "acceptance_rate_pct": 50.0,
        "revenue": "330.00",
    }
    steps = {
        r["step"]: r
        for r in (await analytics.get("handoffs", group_by="dealer", **window)).json()["rows"]
        if r["key"] == mine
    }
    assert (steps["quoting"]["owner"], steps["quoting"]["count"], steps["quoting"]["total_minutes"]) == (
        "hotline",
        4,
        30.0 + 50 + 110 + 110,
    )
    decision = steps["customer_decision"]
    # 200 (accepted), 120 (declined), 2880 (expired), 2820 (accepted late, its expiry withdrawn)
    assert (decision["owner"], decision["count"], decision["median_minutes"], decision["p90_minutes"]) == (
        "customer",
        4,
        (200 + 2820) / 2,
        2880.0,
    )
    assert decision["total_minutes"] == 6020.0
    parts = steps["parts_wait"]
    assert (parts["owner"], parts["count"], parts["total_minutes"]) == ("warehouse", 1, 1440.0)
    six = 4 * 10 + 240 + 10 + 40 + 1560  # triage ×4, then assign, accept, travel, repair of the accepted one
    assert parts["share_pct"] == round(100 * 1440 / six, 1)
    # the six steps' shares still make 100 (each rounded to 1 decimal)
    assert abs(sum(steps[s]["share_pct"] for s in ("triage", "assign", "accept", "travel", "repair")) - 100) < 0.3

    waits = [
        r for r in (await analytics.get("part-waits", group_by="dealer", **window)).json()["rows"] if r["key"] == mine
    ]
    assert waits == [
        {
            "key": mine,
            "part_number": part_a,
            "part_requests": 1,
            "waiting": 1,
            "received": 1,
            "median_wait_minutes": 1440.0,
            "p90_wait_minutes": 1440.0,
            "total_wait_minutes": 1440.0,
        },
        {
            "key": mine,
            "part_number": part_b,
            "part_requests": 1,
            "waiting": 0,
            "received": 0,
            "median_wait_minutes": None,
            "p90_wait_minutes": None,
            "total_wait_minutes": 0.0,
        },
    ]

    # as it stood before the late acceptance synced: the timer's expiry held, one acceptance, 250.00
    before = rfc3339(synced - timedelta(minutes=1))
    then = (await analytics.get("paid-service", group_by="dealer", as_of=before, **window)).json()["rows"]
    (row,) = [r for r in then if r["key"] == mine]
    assert (row["accepted"], row["expired"], row["acceptance_rate_pct"], row["revenue"]) == (1, 2, 25.0, "250.00")
    then_steps = (await analytics.get("handoffs", group_by="dealer", as_of=before, **window)).json()["rows"]
    (decided,) = [r for r in then_steps if r["key"] == mine and r["step"] == "customer_decision"]
    assert decided["total_minutes"] == 120 + 200 + 2880 + 2880

    # the same as the reference over the same events, live and then
    trails = process_trails(reference(envelopes + others))
    span = Window.of_dates(t0.date(), (t0 + timedelta(days=1)).date())
    for view, function in (
        ("paid-service", paid_service_rows),
        ("part-waits", part_wait_rows),
        ("handoffs", handoff_rows),
    ):
        served = (await analytics.get(view, group_by="dealer", **window)).json()["rows"]
        assert [r for r in served if r["key"] in (mine, other)] == [
            r for r in function(trails, span, GroupBy.dealer) if r["key"] in (mine, other)
        ], view

    dealer = analytics.auth("dealer", dealer_id=mine)
    for view in ("paid-service", "part-waits"):
        own = await analytics.get(view, headers=dealer, group_by="dealer", **window)
        assert {r["key"] for r in own.json()["rows"]} == {mine}, view


async def test_the_paid_service_and_part_wait_views_refuse_bad_input_naming_the_field(analytics):
    for view in ("paid-service", "part-waits"):
        assert (await analytics.client.get(f"/v1/views/{view}")).status_code == 401
        assert (await analytics.get(view, headers=analytics.auth("agent"))).status_code == 403
        bad_key = await analytics.get(view, group_by="colour")
        assert bad_key.status_code == 422 and bad_key.json()["errors"][0]["field"] == "query.group_by"
        reversed_window = await analytics.get(view, from_="2026-03-05", to="2026-03-01")
        assert reversed_window.status_code == 422 and reversed_window.json()["errors"][0]["field"] == "query.from"
        bad_moment = await analytics.get(view, as_of="yesterday")
        assert bad_moment.status_code == 422 and bad_moment.json()["errors"][0]["field"] == "query.as_of"
