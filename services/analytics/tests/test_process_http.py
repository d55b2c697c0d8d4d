"""The process view over HTTP on the running service (the in-process broker, the DuckDB projection): hand-offs, rework,
variants and findings equal the reference definitions over the same events, `as_of` restates a late sync, a
dealer sees only its own requests, and the exports stream its requests only, without customer data."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from xml.etree import ElementTree

import pydantic
import pytest

from services.analytics.metrics import Window
from services.analytics.process import finding_rows, handoff_rows, process_trails, rework_rows, variant_rows
from services.analytics.process_api import finding_rules
from services.analytics.records import analytics_event
from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import unique
from services.analytics.views import GroupBy
from shared.clock import rfc3339, utcnow
from shared.contracts import REGISTRY
from shared.contracts.complaints import ComplaintReopened
from shared.contracts.dispatch import JobCompleted
from shared.testing.kafka import publish


def reference(envelopes) -> list:
    return [analytics_event(e, REGISTRY.get(e.type, e.schema_version).model_validate_json(e.data)) for e in envelopes]


async def test_the_process_views_over_http_equal_the_reference_and_a_dealer_sees_its_own(analytics, event_bus):
    mine, other, center = unique("D"), unique("D"), unique("C")
    t0 = (utcnow() - timedelta(days=4)).replace(hour=7, minute=0, second=0, microsecond=0)
    late = t0 + timedelta(days=2)  # when the technician's phone synced the acceptance
    envelopes = []
    for dealer in (mine, other):
        keys = dict(dealer_id=dealer, region=unique("r"), product_line="washer")
        rid, jid, phone, complaint = (str(uuid.uuid4()) for _ in range(4))
        envelopes += [
            ev.received(rid, t0, **keys, recorded_at=t0),
            ev.triaged(rid, t0 + timedelta(minutes=20), recorded_at=t0 + timedelta(minutes=20)),
            ev.job_created(jid, rid, t0 + timedelta(minutes=20), **keys, recorded_at=t0 + timedelta(minutes=20)),
            ev.assigned(
                jid,
                rid,
                t0 + timedelta(minutes=21),
                center_id=center,
                technician_id="T1",
                recorded_at=t0 + timedelta(minutes=21),
            ),
            ev.assigned(
                jid,
                rid,
                t0 + timedelta(minutes=30),
                center_id=center,
                technician_id="T2",
                recorded_at=t0 + timedelta(minutes=30),
            ),
            ev.accepted(jid, rid, t0 + timedelta(minutes=45), "T2", recorded_at=late),
            ev.arrived(jid, rid, t0 + timedelta(hours=3), "T2", recorded_at=late),
            ev.stamped(
                JobCompleted(job_id=jid, request_id=rid, technician_id="T2", fixed=False, reason="customer_absent"),
                t0 + timedelta(hours=3, minutes=10),
                late,
            ),
            ev.arrived(jid, rid, t0 + timedelta(hours=27), "T2", recorded_at=late),
            ev.completed(jid, rid, t0 + timedelta(hours=28), "T2", fixed=True, recorded_at=late),
            ev.revisit(jid, rid, t0 + timedelta(hours=50), 2, 3, recorded_at=late + timedelta(hours=1)),
            ev.complaint(
                t0 + timedelta(hours=51),
                job_id=jid,
                dealer_id=dealer,
                complaint_id=complaint,
                recorded_at=late + timedelta(hours=2),
            ),
            ev.stamped(
                ComplaintReopened.model_validate(
                    dict(
                        complaint_id=complaint,
                        reason="not fixed after all",
                        appeal=False,
                        level=1,
                        ack_due=t0 + timedelta(hours=53),
                        resolve_due=t0 + timedelta(hours=60),
                    )
                ),
                t0 + timedelta(hours=52),
                late + timedelta(hours=3),
                source="complaints",
            ),
            ev.received(phone, t0 + timedelta(hours=1), **keys, recorded_at=t0 + timedelta(hours=1)),
            ev.triaged(
                phone, t0 + timedelta(hours=1, minutes=4), mode="phone", recorded_at=t0 + timedelta(hours=1, minutes=4)
            ),
        ]
    await publish(event_bus, *envelopes)
    window = {"from_": t0.date().isoformat(), "to": (t0 + timedelta(days=1)).date().isoformat()}
    trails = process_trails(reference(envelopes))
    span = Window.of_dates(t0.date(), (t0 + timedelta(days=1)).date())

    def expected(view, **kw):
        return [r for r in view(trails, span, GroupBy.dealer, **kw) if r["key"] in (mine, other)]

    def ours(response) -> list:
        assert response.status_code == 200, response.text
        return [r for r in response.json()["rows"] if r["key"] in (mine, other)]

    await analytics.rows_when(
        "rework",
        lambda r: r.get(mine, {}).get("reopened_complaints") == 1 and r.get(other, {}).get("reopened_complaints") == 1,
        group_by="dealer",
        **window,
    )
    for view, function, kw in [
        ("handoffs", handoff_rows, {}),
        ("rework", rework_rows, {}),
        ("variants", variant_rows, {}),
        ("process-findings", finding_rows, {"rules": finding_rules()}),
    ]:
        assert ours(await analytics.get(view, group_by="dealer", **window)) == expected(function, **kw), view
    steps = {
        r["step"]: r for r in ours(await analytics.get("handoffs", group_by="dealer", **window)) if r["key"] == mine
    }
    assert (steps["triage"]["median_minutes"], steps["repair"]["customer_minutes"]) == (12.0, 1430.0)
    assert steps["follow_up"]["count"] == 1 and steps["accept"]["median_minutes"] == 24.0

    # as_of before the technician's phone synced: no acceptance, no travel, no repair yet
    then = ours(await analytics.get("handoffs", group_by="dealer", as_of=rfc3339(late - timedelta(hours=1)), **window))
    assert {r["step"] for r in then if r["key"] == mine} == {"triage", "assign"}

    # a dealer token: its own rows only, whatever it asks
    dealer = analytics.auth("dealer", dealer_id=mine)
    own = await analytics.get("handoffs", headers=dealer, group_by="dealer", **window)
    assert {r["key"] for r in own.json()["rows"]} == {mine}
    findings = (await analytics.get("process-findings", headers=dealer, group_by="dealer", **window)).json()["rows"]
    assert findings and {f["key"] for f in findings} == {mine}

    export_window = {"from": window["from_"], "to": (t0 + timedelta(days=4)).date().isoformat()}
    ocel = await analytics.client.get("/v1/exports/ocel", params=export_window, headers=dealer)
    assert ocel.status_code == 200 and ocel.headers["content-type"].startswith("application/json")
    assert b"Ann Farmer" not in ocel.content and b"5550101" not in ocel.content
    log = json.loads(ocel.content)
    mine_requests = {f"service_request:{e.subject}" for e in envelopes[:15] if e.type == "service_request.received"}
    assert {o["id"] for o in log["objects"] if o["type"] == "service_request"} == mine_requests
    assert len(log["events"]) == 15  # every event of its two requests, complaints included through the job
    assert {o["id"] for o in log["objects"] if o["type"] == "dealer"} == {f"dealer:{mine}"}

    sqlite = await analytics.client.get(
        "/v1/exports/ocel", params={**export_window, "format": "sqlite"}, headers=dealer
    )
    assert sqlite.status_code == 200 and sqlite.content.startswith(b"SQLite format 3\x00")

    xes = await analytics.client.get("/v1/exports/xes", params=export_window, headers=analytics.analyst)
    assert xes.status_code == 200
    traces = {
        t.find("{http://www.xes-standard.org/}string[@key='concept:name']").get("value")
        for t in ElementTree.fromstring(xes.content).iter("{http://www.xes-standard.org/}trace")
    }
    assert {e.subject for e in envelopes if e.type == "service_request.received"} <= traces


async def test_an_export_needs_a_reading_role_and_a_sane_window(analytics):
    assert (await analytics.client.get("/v1/exports/ocel")).status_code == 401
    clerk = analytics.auth("agent")
    assert (await analytics.client.get("/v1/exports/xes", headers=clerk)).status_code == 403
    reversed_window = await analytics.client.get(
        "/v1/exports/ocel", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=analytics.analyst
    )
    assert reversed_window.status_code == 422 and reversed_window.json()["errors"][0]["field"] == "query.from"
    bad = await analytics.client.get("/v1/exports/ocel", params={"format": "csv"}, headers=analytics.analyst)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.format"


def test_a_peer_minimum_below_one_is_refused_at_startup_not_answered_with_a_500(monkeypatch) -> None:
    monkeypatch.setenv("PEER_MIN_REQUESTS", "0")
    with pytest.raises(pydantic.ValidationError, match="peer_min_requests"):
        finding_rules()
