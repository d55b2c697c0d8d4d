"""The parts ledger over HTTP, for jobs warranty learned from dispatch's events on the broker: the
catalogue, locations, receipts, transfers and the stock they add up to; part requests reserved from the van,
the center or a warehouse, or backordered; bad input refused whole, naming the field."""

from datetime import timedelta

from services.warranty.tests.conftest import complete_job, open_job, serial
from services.warranty.tests.parts_helpers import (
    Ledger,
    add_location,
    catalogue,
    receive,
    request_part,
    stock,
    stored_events,
    unique,
)


async def test_a_part_is_catalogued_once_then_re_priced_and_the_same_registration_records_nothing(warranty):
    part = unique("P")
    first = await catalogue(warranty, part, category="Compressor", price="310.00")
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/v1/parts/{part}"
    assert (first.json()["category"], first.json()["unit_price"], first.json()["currency"]) == (
        "compressor",
        "310.00",
        "EUR",
    )
    repriced = await catalogue(warranty, part, category="compressor", price="329.90")
    assert (repriced.status_code, repriced.json()["unit_price"]) == (200, "329.90")
    before = await stored_events(warranty)
    again = await catalogue(warranty, part, category="compressor", price="329.90")
    assert again.status_code == 200 and await stored_events(warranty) == before

    shown = await warranty.client.get(f"/v1/parts/{part}", headers=warranty.dealer("D1"))
    assert shown.json()["unit_price"] == "329.90"
    listed = await warranty.client.get("/v1/parts?category=compressor", headers=warranty.auth("technician", sub="T1"))
    assert [p["part_number"] for p in listed.json()["items"]] == [part]
    by_dealer = await warranty.client.post(
        "/v1/parts",
        json={"part_number": part, "name": "x", "category": "pump", "unit_price": "1"},
        headers=warranty.auth("dealer", "warranty_officer", dealer_id="D1"),
    )
    assert by_dealer.status_code == 403


async def test_receipts_and_transfers_add_up_to_the_stock_per_location_and_part(warranty):
    ledger = await Ledger(warranty).set_up()
    received = await receive(warranty, ledger.warehouse, ledger.part, 5, reference="DN-77")
    assert received.status_code == 201, received.text
    assert (received.json()["on_hand"], received.json()["available"]) == (5, 5)
    moved = await warranty.client.post(
        "/v1/stock/transfers",
        json={
            "from_location_id": ledger.warehouse,
            "to_location_id": ledger.van,
            "part_number": ledger.part,
            "quantity": 2,
        },
        headers=warranty.auth("dispatcher"),
    )
    assert moved.status_code == 201, moved.text
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 3, "reserved": 0, "available": 3}
    assert await stock(warranty, ledger.van, ledger.part) == {"on_hand": 2, "reserved": 0, "available": 2}
    rows = (await warranty.client.get(f"/v1/stock?part_number={ledger.part}", headers=warranty.officer)).json()
    assert sorted((r["location_id"], r["on_hand"]) for r in rows["items"]) == sorted(
        [(ledger.warehouse, 3), (ledger.van, 2)]
    )


async def test_bad_stock_input_is_a_problem_naming_the_field_and_writes_nothing(warranty):
    ledger = await Ledger(warranty).set_up()
    await receive(warranty, ledger.warehouse, ledger.part, 1)
    before = await stored_events(warranty)
    transfer = {
        "from_location_id": ledger.warehouse,
        "to_location_id": ledger.center,
        "part_number": ledger.part,
        "quantity": 2,
    }
    cases = [
        (await receive(warranty, ledger.warehouse, ledger.part, 0), 422, "quantity"),
        (await receive(warranty, ledger.warehouse, ledger.part, -3), 422, "quantity"),
        (await receive(warranty, "no-such-place", ledger.part, 1), 404, "location_id"),
        (await receive(warranty, ledger.warehouse, "no-such-part", 1), 404, "part_number"),
        (await add_location(warranty, unique("VAN"), "van"), 422, "technician_id"),
        (await add_location(warranty, unique("S"), "center"), 422, "center_id"),
        (await add_location(warranty, unique("VAN"), "van", technician_id="T1"), 409, "technician_id"),
        (await add_location(warranty, ledger.warehouse, "warehouse"), 409, "id"),
        (await warranty.client.post("/v1/stock/transfers", json=transfer, headers=warranty.officer), 409, "quantity"),
        (
            await warranty.client.post(
                "/v1/stock/transfers", json={**transfer, "to_location_id": "nowhere"}, headers=warranty.officer
            ),
            404,
            "to_location_id",
        ),
        (
            await warranty.client.get("/v1/stock?location_id=nowhere", headers=warranty.officer),
            404,
            "location_id",
        ),
    ]
    for answer, status, field in cases:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert field in answer.text
    short = cases[8][0].json()
    assert (short["on_hand"], short["reserved"], short["available"]) == (1, 0, 1)
    assert await stored_events(warranty) == before


async def test_a_part_request_reserves_from_the_van_then_the_center_then_a_warehouse_then_backorders(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial())  # assigned to T1 of center C1
    for location, quantity in ((ledger.van, 1), (ledger.center, 1), (ledger.warehouse, 1)):
        assert (await receive(warranty, location, ledger.part, quantity)).status_code == 201

    answers = [await request_part(warranty, job, ledger.part) for _ in range(4)]
    assert [a.status_code for a in answers] == [201] * 4, answers[-1].text
    assert [(a.json()["status"], a.json()["location_id"]) for a in answers] == [
        ("reserved", ledger.van),
        ("reserved", ledger.center),
        ("reserved", ledger.warehouse),
        ("backordered", None),
    ]
    assert answers[0].json()["location_kind"] == "van" and answers[0].headers["location"].startswith(
        "/v1/part-requests/"
    )
    for location in (ledger.van, ledger.center, ledger.warehouse):
        assert await stock(warranty, location, ledger.part) == {"on_hand": 1, "reserved": 1, "available": 0}
    shown = await warranty.client.get(answers[3].headers["location"], headers=warranty.dealer("D1"))
    assert shown.json()["status"] == "backordered"


async def test_a_request_bigger_than_any_one_location_holds_is_reserved_where_it_fits_whole(warranty):
    ledger = await Ledger(warranty).set_up()
    job = await open_job(warranty, serial())
    await receive(warranty, ledger.van, ledger.part, 1)
    await receive(warranty, ledger.warehouse, ledger.part, 3)
    answer = await request_part(warranty, job, ledger.part, quantity=2)
    assert (answer.json()["status"], answer.json()["location_id"]) == ("reserved", ledger.warehouse)


async def test_a_part_request_for_an_unknown_another_dealers_or_completed_job_or_unknown_part_is_refused(warranty):
    ledger = await Ledger(warranty).set_up()
    await receive(warranty, ledger.warehouse, ledger.part, 5)
    job = await open_job(warranty, serial(), dealer_id="D2")
    done = await open_job(warranty, serial(), dealer_id="D1", at=warranty.clock.now() - timedelta(hours=5))
    await complete_job(warranty, done, at=warranty.clock.now() - timedelta(hours=1))
    before = await stored_events(warranty)
    unknown = await warranty.client.post(
        "/v1/part-requests",
        json={"job_id": "no-such-job", "part_number": ledger.part, "quantity": 1},
        headers=warranty.officer,
    )
    other_dealer = await request_part(warranty, job, ledger.part, headers=warranty.dealer("D1"))
    other_technician = await request_part(warranty, job, ledger.part, headers=warranty.auth("technician", sub="T9"))
    completed = await request_part(warranty, done, ledger.part)
    unknown_part = await request_part(warranty, job, "no-such-part")
    zero = await request_part(warranty, job, ledger.part, quantity=0)
    assert [(a.status_code, a.json()["errors"][0]["field"]) for a in (unknown, other_dealer, completed)] == [
        (404, "job_id"),
        (404, "job_id"),
        (409, "job_id"),
    ]
    assert other_technician.status_code == 404
    assert (unknown_part.status_code, unknown_part.json()["errors"][0]["field"]) == (404, "part_number")
    assert zero.status_code == 422 and "quantity" in zero.text
    assert await stored_events(warranty) == before
    assert await stock(warranty, ledger.warehouse, ledger.part) == {"on_hand": 5, "reserved": 0, "available": 5}
