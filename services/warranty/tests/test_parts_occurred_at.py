"""The parts ledger's steps in business time (design.md, "Time": commands take an optional `occurred_at`): a part
request, its receipt at the warehouse, shipping, receiving into the van and the defective part's return, each
synced late with the time it happened, land on the unit's timeline at those times; a time before the step it
follows, before the job, or too far ahead is a 422 naming `occurred_at` and writes nothing."""

from datetime import timedelta

import pytest

from services.warranty.tests.conftest import open_job, serial
from services.warranty.tests.parts_helpers import Ledger, receive, stored_events
from services.warranty.tests.test_parts_flow import swap
from shared.clock import rfc3339


async def post(warranty, path: str, body: dict, headers=None):
    return await warranty.client.post(path, json=body, headers=headers or warranty.auth("dispatcher"))


async def test_a_backorder_filled_shipped_received_swapped_and_returned_late_keeps_each_steps_own_time(warranty):
    ledger = await Ledger(warranty).set_up()
    started = warranty.clock.now() - timedelta(days=6)
    job = await open_job(warranty, serial(), at=started)
    technician = warranty.auth("technician", sub="T1")
    steps = {name: started + timedelta(days=n, hours=1) for n, name in enumerate(("asked", "in", "out", "van"))}

    asked = await post(
        warranty,
        "/v1/part-requests",
        {"job_id": job.job_id, "part_number": ledger.part, "quantity": 1, "occurred_at": rfc3339(steps["asked"])},
        technician,
    )
    assert asked.status_code == 201 and asked.json()["status"] == "backordered", asked.text
    assert asked.json()["requested_at"] == rfc3339(steps["asked"])
    request_id = asked.json()["id"]
    receipt = await receive(warranty, ledger.warehouse, ledger.part, 1, occurred_at=rfc3339(steps["in"]))
    assert receipt.json()["reserved_for"] == [request_id], receipt.text
    shipped = await post(warranty, f"/v1/part-requests/{request_id}/ship", {"occurred_at": rfc3339(steps["out"])})
    assert shipped.status_code == 200, shipped.text
    taken_in = await post(
        warranty, f"/v1/part-requests/{request_id}/receive", {"occurred_at": rfc3339(steps["van"])}, technician
    )
    assert taken_in.status_code == 200 and taken_in.json()["status"] == "received", taken_in.text
    swapped_at = steps["van"] + timedelta(hours=20)
    swapped = await swap(warranty, job, ledger.part, old_part_serial="OLD-1", occurred_at=rfc3339(swapped_at))
    assert swapped.status_code == 201 and swapped.json()["issued_from"] == ledger.van, swapped.text
    returned = await post(
        warranty,
        "/v1/part-returns",
        {
            "swap_id": swapped.json()["id"],
            "old_part_serial": "OLD-1",
            "condition": "defective",
            "occurred_at": rfc3339(swapped_at + timedelta(hours=3)),
        },
        technician,
    )
    assert returned.status_code == 201, returned.text

    history = await warranty.wait_for_history(job.serial, lambda items: "part.returned" in {i["type"] for i in items})
    times = {i["type"]: i["time"] for i in history if i["type"].startswith(("part_request.", "part."))}
    assert times == {
        "part_request.backordered": rfc3339(steps["asked"]),
        "part_request.reserved": rfc3339(steps["in"]),
        "part_request.shipped": rfc3339(steps["out"]),
        "part_request.received": rfc3339(steps["van"]),
        "part.swapped": rfc3339(swapped_at),
        "part.returned": rfc3339(swapped_at + timedelta(hours=3)),
    }


@pytest.mark.parametrize("when", ["before the job", "in the future"])
async def test_a_part_request_before_its_job_or_ahead_of_the_clock_is_a_422_naming_occurred_at(warranty, when):
    ledger = await Ledger(warranty).set_up()
    started = warranty.clock.now() - timedelta(days=2)
    job = await open_job(warranty, serial(), at=started)
    moment = started - timedelta(hours=1) if when == "before the job" else warranty.clock.now() + timedelta(hours=1)
    before = await stored_events(warranty)
    asked = await post(
        warranty,
        "/v1/part-requests",
        {"job_id": job.job_id, "part_number": ledger.part, "quantity": 1, "occurred_at": rfc3339(moment)},
    )
    assert (asked.status_code, asked.json()["errors"][0]["field"]) == (422, "occurred_at"), asked.text
    assert await stored_events(warranty) == before


async def test_shipping_before_the_reservation_is_a_422_naming_occurred_at_and_writes_nothing(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial(), at=warranty.clock.now() - timedelta(days=3))
    assert (await receive(warranty, ledger.warehouse, ledger.part, 1)).status_code == 201
    reserved_at = warranty.clock.now() - timedelta(days=1)
    asked = await post(
        warranty,
        "/v1/part-requests",
        {"job_id": job.job_id, "part_number": ledger.part, "quantity": 1, "occurred_at": rfc3339(reserved_at)},
    )
    assert asked.json()["location_id"] == ledger.warehouse, asked.text
    before = await stored_events(warranty)
    early = await post(
        warranty,
        f"/v1/part-requests/{asked.json()['id']}/ship",
        {"occurred_at": rfc3339(reserved_at - timedelta(minutes=1))},
    )
    assert (early.status_code, early.json()["errors"][0]["field"]) == (422, "occurred_at"), early.text
    assert await stored_events(warranty) == before
    assert (await post(warranty, f"/v1/part-requests/{asked.json()['id']}/ship", {})).status_code == 200
