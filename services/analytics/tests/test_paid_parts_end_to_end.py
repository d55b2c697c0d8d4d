"""Paid service and the parts wait end to end through the real Kafka broker, with intake's, dispatch's and
warranty's real apps and analytics consuming the topics: an out-of-warranty request waits for a quote, the
customer accepts it, dispatch creates and assigns the job, the technician's part request is backordered (his van
and the warehouse are empty), reserved at the warehouse when stock arrives, shipped and received into his van,
the swap issues it from the van, the defective part comes back, and the dealer's claim (refused by the rules:
the unit is out of warranty) is approved by the warranty officer. Analytics shows the customer's decision and
the parts wait as steps of the hand-offs, and the acceptance and the revenue in the paid-service view."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.analytics.app import create_app
from services.analytics.metrics import to_micros
from services.analytics.tests.conftest import Analytics, analytics_settings, unique
from services.intake.tests.conftest import new_request_body
from services.warranty.tests.conftest import serial
from services.warranty.tests.parts_helpers import add_location, catalogue, return_old_part_and_complete, swap_compressor
from services.warranty.tests.test_end_to_end_with_intake import (  # noqa: F401  (fixtures)
    coverage_shown,
    dispatch,
    event_bus,
    intake,
)
from services.warranty.tests.test_part_returns import strict_warranty  # noqa: F401  (fixture)
from shared.contracts.topics import INTAKE, WARRANTY
from shared.testing.app import bearer, eventually, running
from shared.testing.kafka import collect, headers_of, subject_is


@pytest.fixture
async def analytics(tmp_path, kafka_bootstrap):
    """Analytics of its own on the real broker (the package's one reads the in-process bus)."""
    settings = analytics_settings(tmp_path, kafka_bootstrap)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        yield Analytics(client, settings, app)


def minutes_between(start: str, end: str) -> float:
    micros = to_micros(datetime.fromisoformat(end)) - to_micros(datetime.fromisoformat(start))
    return round(micros / 60_000_000, 1)


async def test_a_paid_job_waits_for_the_customer_and_for_a_part_and_analytics_shows_both_waits_and_the_revenue(
    strict_warranty,  # noqa: F811  (the fixtures imported above)
    intake,  # noqa: F811
    dispatch,  # noqa: F811
    analytics,
):
    w = strict_warranty
    dispatch_client, dispatch_settings = dispatch
    w.catch_up_with_real_time()
    dealer, part, warehouse, van = unique("D"), unique("COMP"), unique("WH"), unique("VAN-T-7")
    assert (await catalogue(w, part, category="compressor", price="310.00")).status_code == 201
    assert (await add_location(w, warehouse, "warehouse")).status_code == 201
    assert (await add_location(w, van, "van", technician_id="T-7")).status_code == 201
    sn = serial()
    await w.register(sn, w.today - timedelta(days=6 * 365), dealer_id=dealer)  # long out of warranty

    body = new_request_body(sn, dealer_id=dealer, channel="dealer")
    request_id = (await intake.post("/v1/service-requests", json=body)).json()["id"]
    assert (await coverage_shown(intake, request_id))["covered"] is False
    triaged = await intake.post(f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"})
    assert triaged.json()["status"] == "awaiting_quote", triaged.text
    quote_body = {"labour_minutes": 60, "parts": [{"part_number": part, "quantity": 1}]}
    quoted = await eventually(  # once intake's copy of the catalogue has the part (from part.registered)
        lambda: intake.post(f"/v1/service-requests/{request_id}/quote", json=quote_body),
        until=lambda r: r.status_code == 200,
        timeout=30,
    )
    quote = quoted.json()["quote"]
    accepted = await intake.post(
        f"/v1/service-requests/{request_id}/quote/accept", json={"channel": "dealer", "quote_id": quote["quote_id"]}
    )
    assert accepted.status_code == 200, accepted.text

    jobs = await eventually(
        lambda: dispatch_client.get(f"/v1/jobs?request_id={request_id}"),
        until=lambda r: len(r.json()["items"]) == 1 and r.json()["items"][0].get("technician_id") == "T-7",
        timeout=30,
    )
    job_id = jobs.json()["items"][0]["id"]
    await w.wait_for_history(sn, lambda items: any(i["type"] == "job.assigned" for i in items))
    technician = w.auth("technician", sub="T-7")
    w.catch_up_with_real_time()
    asked = await w.client.post(
        "/v1/part-requests", json={"job_id": job_id, "part_number": part, "quantity": 1}, headers=technician
    )
    assert (asked.status_code, asked.json()["status"]) == (201, "backordered"), asked.text
    part_request_id = asked.json()["id"]
    w.clock.advance(seconds=3 * 3600)  # the stock arrives three hours later
    receipt = await w.client.post(
        "/v1/stock/receipts",
        json={"location_id": warehouse, "part_number": part, "quantity": 2, "reference": "DN-7"},
        headers=w.officer,
    )
    assert receipt.json()["reserved_for"] == [part_request_id]
    assert (await w.client.post(f"/v1/part-requests/{part_request_id}/ship", headers=w.auth("dispatcher"))).is_success
    w.clock.advance(seconds=2 * 3600)  # and reaches the van two hours after that
    received = await w.client.post(f"/v1/part-requests/{part_request_id}/receive", json={}, headers=technician)
    assert received.json()["status"] == "received", received.text

    on_site = bearer(dispatch_settings, "technician", sub="T-7")
    for step in ("accept", "arrive"):
        assert (await dispatch_client.post(f"/v1/jobs/{job_id}/{step}", headers=on_site)).status_code == 200
    swap = await swap_compressor(w, job_id, request_id, sn, part, headers=technician)
    assert (swap.status_code, swap.json()["issued_from"]) == (201, van), swap.text
    await return_old_part_and_complete(w, dispatch_client, swap.json()["id"], job_id, sn, technician, on_site)
    claim = await w.client.post(
        "/v1/claims",
        json={"job_id": job_id, "labour_minutes": 60, "swap_ids": [swap.json()["id"]]},
        headers=w.dealer(dealer),
    )
    assert claim.status_code == 201, claim.text
    verdicts = {r["rule"]: r["ok"] for r in claim.json()["reasons"]}
    assert (verdicts["coverage_valid"], verdicts["defective_part_returned"]) == (False, True)
    approved = await w.client.post(
        f"/v1/claims/{claim.json()['id']}/approve",
        json={"reason": "goodwill: the defective part came back"},
        headers=w.officer,
    )
    assert (approved.status_code, approved.json()["status"]) == (200, "approved"), approved.text

    # what analytics shows, from the topics: the customer's decision and the parts wait, and the revenue
    quote_events = await collect(w.kafka, INTAKE, subject_is(request_id), expected=7)
    times = {headers_of(r)["ce_type"]: headers_of(r)["ce_time"] for r in quote_events}
    part_events = await collect(w.kafka, WARRANTY, subject_is(part_request_id), expected=4)
    part_times = {headers_of(r)["ce_type"]: headers_of(r)["ce_time"] for r in part_events}
    day = times["service_request.received"][:10]
    window = {"group_by": "dealer", "from_": day, "to": (w.today + timedelta(days=2)).isoformat()}
    handoffs = await eventually(
        lambda: analytics.get("handoffs", **window),
        until=lambda r: (
            {"customer_decision", "parts_wait", "repair"}
            <= {row["step"] for row in r.json()["rows"] if row["key"] == dealer}
        ),
        timeout=30,
    )
    steps = {row["step"]: row for row in handoffs.json()["rows"] if row["key"] == dealer}
    decision, parts_wait = steps["customer_decision"], steps["parts_wait"]
    assert (decision["owner"], decision["count"]) == ("customer", 1)
    assert decision["total_minutes"] == minutes_between(
        times["service_request.quote_issued"], times["service_request.quote_accepted"]
    )
    assert (parts_wait["owner"], parts_wait["count"]) == ("warehouse", 1)
    assert parts_wait["total_minutes"] == minutes_between(
        part_times["part_request.backordered"], part_times["part_request.received"]
    )
    assert parts_wait["total_minutes"] >= 300.0  # the three hours to the receipt and two more to the van
    paid = await analytics.rows_when("paid-service", lambda rows: rows.get(dealer, {}).get("accepted") == 1, **window)
    assert paid[dealer] | {"key": None} == {
        "key": None,
        "currency": quote["currency"],
        "quotes_issued": 1,
        "accepted": 1,
        "declined": 0,
        "expired": 0,
        "acceptance_rate_pct": 100.0,
        "revenue": quote["total"],
    }
    waits = (await analytics.get("part-waits", **window)).json()["rows"]
    assert [(r["part_number"], r["waiting"], r["total_wait_minutes"]) for r in waits if r["key"] == dealer] == [
        (part, 1, parts_wait["total_minutes"])
    ]
