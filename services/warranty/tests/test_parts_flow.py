"""A part request's way to the unit over HTTP: shipped from the warehouse to the technician's van, received
there (never more than shipped), reserved for the job until the swap issues it from the van; a backorder
reserved by the receipt that brings the part; swaps of parts the ledger does not follow recorded as before."""

from datetime import timedelta

from services.warranty.tests.conftest import complete_job, open_job, serial
from services.warranty.tests.parts_helpers import Ledger, catalogue, receive, request_part, stock, stored_events


async def ship(warranty, part_request_id: str):
    return await warranty.client.post(f"/v1/part-requests/{part_request_id}/ship", headers=warranty.auth("dispatcher"))


async def take_in(warranty, part_request_id: str, quantity: int | None = None, sub: str = "T1"):
    body = {} if quantity is None else {"quantity": quantity}
    return await warranty.client.post(
        f"/v1/part-requests/{part_request_id}/receive", json=body, headers=warranty.auth("technician", sub=sub)
    )


async def swap(
    warranty, job, part_number: str, *, category: str = "pump", quantity: int = 1, technician: str = "T1", **fields
):
    body = {
        "job_id": job.job_id,
        "request_id": job.request_id,
        "serial": job.serial,
        "part_number": part_number,
        "part_category": category,
        "quantity": quantity,
        "unit_cost": "120.00",
        **fields,
    }
    return await warranty.client.post("/v1/part-swaps", json=body, headers=warranty.auth("technician", sub=technician))


async def test_a_backorder_is_reserved_by_the_receipt_shipped_received_in_the_van_and_issued_by_the_swap(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial())
    backordered = await request_part(warranty, job, ledger.part, quantity=2)
    assert backordered.json()["status"] == "backordered", backordered.text
    request_id = backordered.json()["id"]
    assert (await ship(warranty, request_id)).status_code == 409  # nothing reserved yet

    receipt = await receive(warranty, ledger.warehouse, ledger.part, 3)
    assert receipt.json()["reserved_for"] == [request_id]
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 3, "reserved": 2, "available": 1}
    shipped = await ship(warranty, request_id)
    assert shipped.status_code == 200, shipped.text
    assert (shipped.json()["status"], shipped.json()["to_location_id"]) == ("shipped", ledger.van)
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 1, "reserved": 0, "available": 1}

    too_many = await take_in(warranty, request_id, 3)
    assert (too_many.status_code, too_many.json()["errors"][0]["field"]) == (422, "quantity")
    assert (too_many.json()["shipped"], too_many.json()["received"]) == (2, 0)
    assert (await take_in(warranty, request_id, 1, sub="T9")).status_code == 404  # another technician's job
    assert (await take_in(warranty, request_id, 1)).json()["status"] == "shipped"
    assert (await take_in(warranty, request_id)).json()["status"] == "received"
    assert await stock(warranty, ledger.van, ledger.part) == {"on_hand": 2, "reserved": 2, "available": 0}

    swapped = await swap(warranty, job, ledger.part, quantity=2)
    assert swapped.status_code == 201, swapped.text
    assert swapped.json()["issued_from"] == ledger.van
    assert await stock(warranty, ledger.van, ledger.part) == {"on_hand": 0, "reserved": 0, "available": 0}
    history = (await warranty.history(job.serial)).json()["items"]
    assert [i["type"] for i in history if i["type"].startswith("part_request.")] == [
        "part_request.backordered",
        "part_request.reserved",
        "part_request.shipped",
        "part_request.received",
        "part_request.received",
    ]


async def test_a_swap_with_no_stock_in_the_van_is_a_409_naming_what_the_van_holds_and_writes_nothing(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial())
    other = await open_job(warranty, serial())
    await receive(warranty, ledger.van, ledger.part, 1)
    assert (await request_part(warranty, other, ledger.part)).json()["location_id"] == ledger.van
    before = await stored_events(warranty)
    refused = await swap(warranty, job, ledger.part)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert (problem["location_id"], problem["on_hand"], problem["reserved"], problem["available"]) == (
        ledger.van,
        1,
        1,
        0,
    )
    assert "no stock in the van" in problem["detail"] and problem["errors"][0]["field"] == "quantity"
    assert await stored_events(warranty) == before
    assert (await swap(warranty, other, ledger.part)).status_code == 201  # its own reservation


async def test_swaps_of_uncatalogued_parts_or_by_technicians_without_a_van_are_recorded_without_stock(warranty):
    ledger = await Ledger(warranty).set_up(van=False)
    job = await open_job(warranty, serial())
    uncatalogued = await swap(warranty, job, "P-local-purchase")
    without_van = await swap(warranty, job, ledger.part)
    assert (uncatalogued.status_code, uncatalogued.json()["issued_from"]) == (201, None)
    assert (without_van.status_code, without_van.json()["issued_from"]) == (201, None)
    wrong_category = await swap(warranty, job, ledger.part, category="compressor")
    assert (wrong_category.status_code, wrong_category.json()["errors"][0]["field"]) == (422, "part_category")


async def test_a_request_reserved_in_the_van_is_not_shipped_and_a_technician_without_a_van_gets_none(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial())
    await receive(warranty, ledger.van, ledger.part, 1)
    in_van = (await request_part(warranty, job, ledger.part)).json()
    assert (await ship(warranty, in_van["id"])).status_code == 409
    assert (await take_in(warranty, in_van["id"])).status_code == 409

    vanless = await open_job(warranty, serial(), technician_id="T7")
    await receive(warranty, ledger.warehouse, ledger.part, 1)
    at_warehouse = (await request_part(warranty, vanless, ledger.part, headers=warranty.officer)).json()
    assert at_warehouse["location_id"] == ledger.warehouse
    refused = await ship(warranty, at_warehouse["id"])
    assert (refused.status_code, refused.json()["errors"][0]["field"]) == (409, "technician_id")
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 1, "reserved": 1, "available": 0}


async def test_a_receipt_fills_the_oldest_backorders_that_fit_and_only_where_the_job_may_draw_from(warranty):
    ledger = await Ledger(warranty).set_up()
    mine = await open_job(warranty, serial())  # T1, center C1
    elsewhere = await open_job(warranty, serial(), technician_id="T8")  # T8 is also of C1 in these events
    big = (await request_part(warranty, mine, ledger.part, quantity=3)).json()
    small = (await request_part(warranty, mine, ledger.part, quantity=1)).json()
    theirs = (await request_part(warranty, elsewhere, ledger.part, quantity=1, headers=warranty.officer)).json()
    assert {big["status"], small["status"], theirs["status"]} == {"backordered"}

    into_van = await receive(warranty, ledger.van, ledger.part, 2)  # T1's van: not T8's job, and 3 do not fit
    assert into_van.json()["reserved_for"] == [small["id"]]
    into_warehouse = await receive(warranty, ledger.warehouse, ledger.part, 4)
    assert into_warehouse.json()["reserved_for"] == [big["id"], theirs["id"]]
    await catalogue(warranty, ledger.part, price="99.00")  # re-pricing leaves the stock alone
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 4, "reserved": 4, "available": 0}


async def test_a_retried_receipt_and_part_request_with_the_same_idempotency_key_count_once(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial())
    receipt = {"location_id": ledger.warehouse, "part_number": ledger.part, "quantity": 2}
    headers = {**warranty.officer, "Idempotency-Key": "delivery-note-17"}
    first, retried = [await warranty.client.post("/v1/stock/receipts", json=receipt, headers=headers) for _ in "12"]
    assert (first.status_code, retried.status_code, retried.json()) == (201, 201, first.json())
    asked = {"job_id": job.job_id, "part_number": ledger.part, "quantity": 1}
    technician = {**warranty.auth("technician", sub="T1"), "Idempotency-Key": "ask-once"}
    one, again = [await warranty.client.post("/v1/part-requests", json=asked, headers=technician) for _ in "12"]
    assert again.json()["id"] == one.json()["id"]
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 2, "reserved": 1, "available": 1}


async def test_a_job_completed_fixed_frees_what_its_requests_hold_unused_and_its_backorders_stay_unfilled(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial())
    await receive(warranty, ledger.van, ledger.part, 2)
    await receive(warranty, ledger.warehouse, ledger.part, 1)
    in_van = (await request_part(warranty, job, ledger.part, quantity=2)).json()
    at_warehouse = (await request_part(warranty, job, ledger.part)).json()
    waiting = (await request_part(warranty, job, ledger.part, quantity=5)).json()
    assert [r["location_id"] for r in (in_van, at_warehouse, waiting)] == [ledger.van, ledger.warehouse, None]
    assert (await swap(warranty, job, ledger.part)).json()["issued_from"] == ledger.van  # uses 1 of the 2

    await complete_job(warranty, job, at=warranty.clock.now() + timedelta(minutes=1))
    assert await stock(warranty, ledger.van, ledger.part) == {"on_hand": 1, "reserved": 0, "available": 1}
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 1, "reserved": 0, "available": 1}
    listed = await warranty.client.get(f"/v1/part-requests?job_id={job.job_id}", headers=warranty.dealer("D1"))
    assert [r["status"] for r in listed.json()["items"]] == ["released", "released", "released"]
    assert (await receive(warranty, ledger.warehouse, ledger.part, 5)).json()["reserved_for"] == []
    history = (await warranty.history(job.serial)).json()["items"]
    released = [i["detail"] for i in history if i["type"] == "part_request.released"]
    assert sorted((d["quantity"], d["location_id"] or "") for d in released) == sorted(
        [(1, ledger.van), (1, ledger.warehouse), (0, "")]
    )
