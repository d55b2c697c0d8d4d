"""The parts chain end to end through real Kafka, with intake's and dispatch's real apps: a request
triaged to a field visit becomes dispatch's job, auto-assigned to a technician; warranty learns the job from
dispatch's events; the technician's part request is backordered (his van and the warehouse are empty), reserved
at the warehouse when the stock arrives, shipped, received into his van; the swap issues the part from the van;
the defective part comes back; dispatch's completion is the repair record, and the dealer's claim is approved
with every rule, the return rule included. Every movement is on `warranty.events`, in order per stream."""

import json
from datetime import timedelta

import pytest

from services.warranty.tests.conftest import serial
from services.warranty.tests.parts_helpers import (
    add_location,
    catalogue,
    return_old_part_and_complete,
    stock,
    swap_compressor,
    unique,
)
from services.warranty.tests.test_end_to_end_with_intake import (  # noqa: F401  (fixtures)
    covered_request_with_its_job,
    dispatch,
    intake,
)
from services.warranty.tests.test_part_returns import strict_warranty  # noqa: F401  (fixture)
from shared.contracts.topics import WARRANTY
from shared.testing.app import bearer
from shared.testing.kafka import collect, headers_of, subject_is


@pytest.fixture(scope="session")
def event_bus(kafka_bootstrap):
    """Real Kafka, as for the end-to-end fixtures this test borrows (`intake`, `dispatch`): the warranty of
    `strict_warranty` must be on the same broker."""
    return kafka_bootstrap


async def test_a_part_waits_on_backorder_travels_to_the_van_goes_into_the_unit_comes_back_and_is_paid(
    strict_warranty,  # noqa: F811  (the fixtures imported above)
    intake,  # noqa: F811
    dispatch,  # noqa: F811
):
    w = strict_warranty
    dispatch_client, dispatch_settings = dispatch
    w.catch_up_with_real_time()
    part, warehouse, van = unique("COMP"), unique("WH"), unique("VAN-T-7")
    assert (await catalogue(w, part, category="compressor", price="310.00")).status_code == 201
    assert (await add_location(w, warehouse, "warehouse")).status_code == 201
    assert (await add_location(w, van, "van", technician_id="T-7")).status_code == 201
    sn = serial()
    await w.register(sn, w.today - timedelta(days=60), dealer_id="D1")

    request_id, job_id = await covered_request_with_its_job(intake, dispatch_client, sn, "D1")
    await w.wait_for_history(sn, lambda items: any(i["type"] == "job.assigned" for i in items))

    technician = w.auth("technician", sub="T-7")
    asked = await w.client.post(
        "/v1/part-requests", json={"job_id": job_id, "part_number": part, "quantity": 1}, headers=technician
    )
    assert (asked.status_code, asked.json()["status"]) == (201, "backordered"), asked.text
    part_request_id = asked.json()["id"]
    receipt = await w.client.post(
        "/v1/stock/receipts",
        json={"location_id": warehouse, "part_number": part, "quantity": 4, "reference": "DN-1"},
        headers=w.officer,
    )
    assert receipt.json()["reserved_for"] == [part_request_id]
    shipped = await w.client.post(f"/v1/part-requests/{part_request_id}/ship", headers=w.auth("dispatcher"))
    assert shipped.json()["to_location_id"] == van
    received = await w.client.post(f"/v1/part-requests/{part_request_id}/receive", json={}, headers=technician)
    assert received.json()["status"] == "received"

    on_site = bearer(dispatch_settings, "technician", sub="T-7")
    for step in ("accept", "arrive"):
        assert (await dispatch_client.post(f"/v1/jobs/{job_id}/{step}", headers=on_site)).status_code == 200
    swap = await swap_compressor(w, job_id, request_id, sn, part, headers=technician)
    assert (swap.status_code, swap.json()["issued_from"], swap.json()["covered"]) == (201, van, True), swap.text
    assert await stock(w, van, part) == {"on_hand": 0, "reserved": 0, "available": 0}
    assert await stock(w, warehouse, part) == {"on_hand": 3, "reserved": 0, "available": 3}
    await return_old_part_and_complete(w, dispatch_client, swap.json()["id"], job_id, sn, technician, on_site)

    claim = await w.client.post(
        "/v1/claims",
        json={"job_id": job_id, "labour_minutes": 60, "swap_ids": [swap.json()["id"]]},
        headers=w.dealer("D1"),
    )
    assert claim.status_code == 201, claim.text
    assert (claim.json()["status"], claim.json()["amounts"]["total"]) == ("approved", "370.00")
    assert {r["rule"]: r["ok"] for r in claim.json()["reasons"]}["defective_part_returned"] is True
    late = await w.client.post(
        "/v1/part-requests", json={"job_id": job_id, "part_number": part, "quantity": 1}, headers=technician
    )
    assert (late.status_code, late.json()["errors"][0]["field"]) == (409, "job_id")

    request_events = await collect(w.kafka, WARRANTY, subject_is(part_request_id), expected=4)
    assert [headers_of(r)["ce_type"] for r in request_events] == [
        "part_request.backordered",
        "part_request.reserved",
        "part_request.shipped",
        "part_request.received",
    ]
    assert json.loads(request_events[1].value)["location_id"] == warehouse
    van_events = await collect(w.kafka, WARRANTY, subject_is(van), expected=3)
    assert [headers_of(r)["ce_type"] for r in van_events] == [
        "stock_location.registered",
        "stock.delivered",
        "stock.issued",
    ]
    assert json.loads(van_events[2].value)["from_reservations"] == {part_request_id: 1}
    unit_events = await collect(w.kafka, WARRANTY, subject_is(sn), expected=4)
    assert "part.returned" in [headers_of(r)["ce_type"] for r in unit_events]
    history = (await w.history(sn)).json()["items"]
    assert [i["type"] for i in history if i["type"].startswith("part")] == [
        "part_request.backordered",
        "part_request.reserved",
        "part_request.shipped",
        "part_request.received",
        "part.swapped",
        "part.returned",
    ]
