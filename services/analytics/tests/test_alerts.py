"""Alerts through the broker (`event_bus`): raised when a dealer's or center's CSAT or SLA met over the last days falls below
its threshold, or a backlog grows; cleared as the events that end the condition arrive."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.analytics.app import create_app
from services.analytics.records import CONSUMES
from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import Analytics, analytics_settings, unique
from shared.clock import utcnow
from shared.testing.app import eventually, running
from shared.testing.kafka import publish, start_group_at_end_now


@pytest.fixture(scope="module")
async def watched(tmp_path_factory, event_bus):
    """Small samples suffice here; one dealer has a stricter CSAT threshold of its own. It reads the topics from
    their ends at its start: the alerts are about these tests' own dealers, and folding every earlier test's
    events of the session (and evaluating the alerts over them after each batch) was over half of this module's time."""
    settings = analytics_settings(
        tmp_path_factory.mktemp("alerts"),
        event_bus,
        alert_min_jobs=2,
        alert_min_responses=2,
        alert_csat_pct=50,
        alert_sla_met_pct=75,
        alert_backlog_growth_min=3,
        alert_backlog_growth_pct=50,
        alert_threshold_overrides={"dealer:STRICT-1": {"csat_pct": 95}},
    )
    start_group_at_end_now(event_bus, settings.consumer_group, CONSUMES)
    async with running(create_app(settings, configure_logs=False)) as client:
        yield Analytics(client, settings, None)


async def alerts_of(watched, key, state="active", headers=None):
    response = await watched.client.get(
        "/v1/views/alerts", params={"state": state, "limit": 500}, headers=headers or watched.analyst
    )
    assert response.status_code == 200, response.text
    return {(a["kind"], a["scope"]): a for a in response.json()["items"] if a["key"] == key}


async def test_low_csat_raises_an_alert_for_the_dealer_and_its_center_and_good_revisits_clear_it(watched, event_bus):
    dealer, center, tech = unique("D"), unique("C"), unique("T")
    keys = dict(dealer_id=dealer, region=unique("r"), product_line="fridge")
    t0 = utcnow() - timedelta(days=2)

    def served(satisfaction: int) -> list:
        rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
        return [
            ev.received(rid, t0, **keys),
            ev.job_created(jid, rid, t0, **keys),
            ev.assigned(jid, rid, t0, center_id=center, technician_id=tech),
            ev.completed(jid, rid, t0 + timedelta(hours=2), tech, fixed=True),
            ev.revisit(jid, rid, t0 + timedelta(hours=3), satisfaction, 5),
        ]

    await publish(event_bus, *served(1), *served(2))
    raised = await eventually(
        lambda: alerts_of(watched, dealer), until=lambda a: ("csat_below", "dealer") in a, timeout=30
    )
    alert = raised[("csat_below", "dealer")]
    assert (alert["value"], alert["threshold"]) == (0.0, 50.0)
    assert "below its threshold" in alert["detail"]
    assert ("csat_below", "center") in await alerts_of(watched, center)
    assert ("sla_met_below", "dealer") not in raised  # both jobs met their SLA

    await publish(event_bus, *served(5), *served(4))  # 2 of 4 satisfied: 50 %, no longer below 50
    await eventually(lambda: alerts_of(watched, dealer), until=lambda a: ("csat_below", "dealer") not in a)
    cleared = await alerts_of(watched, dealer, state="cleared")
    assert cleared[("csat_below", "dealer")]["cleared_at"] >= cleared[("csat_below", "dealer")]["raised_at"]
    # The dealer sees its own alerts only.
    mine = await watched.client.get(
        "/v1/views/alerts", params={"state": "cleared"}, headers=watched.auth("dealer", dealer_id=dealer)
    )
    assert {a["key"] for a in mine.json()["items"]} == {dealer}


async def test_a_threshold_of_the_dealers_own_applies_to_it(watched, event_bus):
    keys = dict(dealer_id="STRICT-1", region=unique("r"), product_line="fridge")
    t0 = utcnow() - timedelta(days=1)
    events = []
    for satisfaction in (5, 5, 4, 5, 3):  # CSAT 80 %: fine by the default 50, not by its own 95
        rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
        events += [ev.received(rid, t0, **keys), ev.revisit(jid, rid, t0 + timedelta(hours=1), satisfaction)]
    await publish(event_bus, *events)
    raised = await eventually(lambda: alerts_of(watched, "STRICT-1"), until=lambda a: ("csat_below", "dealer") in a)
    assert raised[("csat_below", "dealer")]["threshold"] == 95.0


async def test_breached_jobs_raise_an_sla_alert(watched, event_bus):
    dealer = unique("D")
    keys = dict(dealer_id=dealer, region=unique("r"), product_line="fridge")
    t0 = utcnow() - timedelta(days=3)
    events = []
    for breach in (True, True, False):
        rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
        events += [
            ev.received(rid, t0, **keys),
            ev.job_created(jid, rid, t0, **keys),
            ev.completed(jid, rid, t0 + timedelta(hours=9), "T-X", fixed=True),
        ]
        if breach:
            events.append(ev.breached(jid, rid, t0 + timedelta(hours=4)))
    await publish(event_bus, *events)
    raised = await eventually(
        lambda: alerts_of(watched, dealer), until=lambda a: a.get(("sla_met_below", "dealer"), {}).get("value") == 33.3
    )
    assert raised[("sla_met_below", "dealer")]["threshold"] == 75.0


async def test_a_growing_backlog_raises_an_alert_that_clears_once_the_requests_are_resolved(watched, event_bus):
    dealer = unique("D")
    keys = dict(dealer_id=dealer, region=unique("r"), product_line="fridge")
    now = utcnow()
    old, new = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(3)]
    await publish(
        event_bus,
        ev.received(old, now - timedelta(days=9), **keys),
        *[ev.received(rid, now - timedelta(hours=5), **keys) for rid in new],
    )
    raised = await eventually(lambda: alerts_of(watched, dealer), until=lambda a: ("backlog_growing", "dealer") in a)
    assert (raised[("backlog_growing", "dealer")]["value"], raised[("backlog_growing", "dealer")]["threshold"]) == (
        4.0,
        1.0,
    )
    await publish(event_bus, *[ev.triaged(rid, now - timedelta(hours=1), mode="phone") for rid in new[:2]])
    await eventually(lambda: alerts_of(watched, dealer), until=lambda a: ("backlog_growing", "dealer") not in a)


async def test_a_process_finding_is_raised_as_an_alert_naming_its_requests_and_cleared_when_it_stops(
    watched, event_bus
):
    dealer = unique("D")
    keys = dict(dealer_id=dealer, region=unique("r"), product_line="fridge")
    t0 = utcnow() - timedelta(days=1)

    def triaged_after(minutes: int) -> tuple[str, list]:
        rid = str(uuid.uuid4())
        return rid, [ev.received(rid, t0, **keys), ev.triaged(rid, t0 + timedelta(minutes=minutes))]

    slow, events = triaged_after(60)  # against the default HANDOFF_TARGETS of 15 minutes for triage
    await publish(event_bus, *events)
    raised = await eventually(
        lambda: alerts_of(watched, dealer), until=lambda a: ("slow_handoff:triage", "dealer") in a, timeout=30
    )
    alert = raised[("slow_handoff:triage", "dealer")]
    assert (alert["value"], alert["threshold"], alert["request_ids"]) == (60.0, 15.0, [slow])
    someone_else = await watched.client.get(
        "/v1/views/alerts", params={"limit": 500}, headers=watched.auth("dealer", dealer_id=unique("D"))
    )
    assert dealer not in {a["key"] for a in someone_else.json()["items"]}

    fast = [e for _ in range(2) for e in triaged_after(5)[1]]  # median 5 minutes: on target again
    await publish(event_bus, *fast)
    await eventually(
        lambda: alerts_of(watched, dealer), until=lambda a: ("slow_handoff:triage", "dealer") not in a, timeout=30
    )
    cleared = await alerts_of(watched, dealer, state="cleared")
    assert cleared[("slow_handoff:triage", "dealer")]["request_ids"] == [slow]
