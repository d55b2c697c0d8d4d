"""Products sold (one by one and in bulk), policies and coverage over HTTP, against a real database and Kafka."""

import json
from datetime import date, timedelta

from sqlalchemy import func, select

from services.warranty.read_model import products
from services.warranty.tests.conftest import serial
from shared.contracts.topics import WARRANTY
from shared.eventstore.tables import events
from shared.testing.kafka import collect, headers_of, subject_is

HEADER = "serial,model,product_line,sold_on,dealer_id\n"


async def stored_events(warranty) -> int:
    async with warranty.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(events))).scalar_one()


async def registered_count(warranty) -> int:
    async with warranty.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(products))).scalar_one()


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


async def test_a_registered_sale_is_published_and_read_back(warranty):
    sn = serial()
    created = await warranty.register(sn, date(2025, 3, 1), dealer_id="D1")
    assert created.status_code == 201 and created.headers["location"] == f"/v1/products/{sn}"
    assert created.json() | {"registered_at": None} == {
        "serial": sn,
        "model": "T-100",
        "product_line": "tractor",
        "sold_on": "2025-03-01",
        "dealer_id": "D1",
        "registered_at": None,
    }
    fetched = await warranty.client.get(f"/v1/products/{sn}", headers=warranty.dealer("D1"))
    assert fetched.status_code == 200 and fetched.json()["sold_on"] == "2025-03-01"
    assert (await warranty.client.get(f"/v1/products/{sn}", headers=warranty.dealer("D2"))).status_code == 404

    records = await collect(warranty.kafka, WARRANTY, subject_is(sn), expected=1)
    assert headers_of(records[0])["ce_type"] == "product.registered"
    assert json.loads(records[0].value) == {
        "serial": sn,
        "model": "T-100",
        "product_line": "tractor",
        "sold_on": "2025-03-01",
        "dealer_id": "D1",
    }


async def test_bad_registrations_are_problems_naming_the_field_and_write_nothing(warranty):
    sn = serial()
    await warranty.register(sn, date(2025, 3, 1))
    before = await stored_events(warranty)

    again = problem(await warranty.register(sn, date(2025, 4, 1)), 409)
    assert again["errors"] == [{"field": "serial", "reason": again["detail"]}]
    assert "already registered" in again["detail"]
    tomorrow = warranty.today + timedelta(days=1)
    future = problem(await warranty.register(serial(), tomorrow), 422)
    assert future["errors"][0]["field"] == "sold_on"
    slash = problem(await warranty.register("SN/1", date(2025, 3, 1)), 422)
    assert slash["errors"][0]["field"] == "serial"
    other = problem(
        await warranty.client.post(
            "/v1/products",
            headers=warranty.dealer("D1"),
            json={
                "serial": serial(),
                "model": "T",
                "product_line": "tractor",
                "sold_on": "2025-03-01",
                "dealer_id": "D2",
            },
        ),
        403,
    )
    assert other["errors"][0]["field"] == "dealer_id"
    assert (await warranty.client.post("/v1/products", json={}, headers=warranty.auth("agent"))).status_code == 403
    assert await stored_events(warranty) == before


async def test_a_bulk_csv_import_of_thousands_of_rows_registers_them_all(warranty):
    prefix = serial()
    rows = "".join(f"{prefix}-{i},T-100,tractor,2025-03-01,D{i % 3}\n" for i in range(2000))
    response = await warranty.client.post(
        "/v1/products/import", content=HEADER + rows, headers={**warranty.officer, "Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"imported": 2000, "rows": 2000, "rejected": 0, "error_count": 0, "errors": []}
    assert await registered_count(warranty) == 2000
    page = (await warranty.client.get("/v1/products?dealer_id=D1&limit=500", headers=warranty.officer)).json()
    assert len(page["items"]) == 500 and page["next_cursor"] is not None
    assert {p["dealer_id"] for p in page["items"]} == {"D1"}

    ours = prefix.encode() + b"-"
    records = await collect(warranty.kafka, WARRANTY, lambda r: r.key.startswith(ours), expected=2000)
    assert len({r.key for r in records}) == 2000, "every unit's product.registered was published, keyed by serial"
    assert {headers_of(r)["ce_type"] for r in records} == {"product.registered"}


async def test_an_import_with_bad_rows_imports_nothing_and_reports_every_row_with_its_line(warranty):
    taken = serial()
    await warranty.register(taken, date(2025, 1, 1))
    before = (await stored_events(warranty), await registered_count(warranty))
    tomorrow = (warranty.today + timedelta(days=1)).isoformat()
    body = (
        HEADER
        + f"{serial()},T,tractor,2025-03-01,D1\n"
        + f"{taken},T,tractor,2025-03-01,D1\n"
        + f"{serial()},T,tractor,{tomorrow},D1\n"
        + f"{serial()},T,tractor,not-a-date,D1\n"
        + f"{serial()},T,tractor,2025-03-01,D1\n"
    )
    response = problem(
        await warranty.client.post(
            "/v1/products/import", content=body, headers={**warranty.officer, "Content-Type": "text/csv"}
        ),
        422,
    )
    assert response["detail"] == "3 of 5 rows are not valid; nothing was imported"
    assert [(e["line"], e["field"]) for e in response["errors"]] == [(3, "serial"), (4, "sold_on"), (5, "sold_on")]
    assert response["errors"][0] == {"line": 3, "field": "serial", "reason": "already registered", "serial": taken}
    assert (await stored_events(warranty), await registered_count(warranty)) == before


async def test_a_partial_import_takes_the_valid_rows_when_asked(warranty):
    good = [serial(), serial()]
    body = "\n".join(
        [
            json.dumps({"serial": good[0], "model": "W-9", "product_line": "washer", "sold_on": "2025-06-01"}),
            json.dumps({"serial": "bad serial", "model": "W-9", "product_line": "washer", "sold_on": "2025-06-01"}),
            json.dumps(
                {
                    "serial": good[1],
                    "model": "W-9",
                    "product_line": "washer",
                    "sold_on": "2025-06-01",
                    "dealer_id": "D4",
                }
            ),
        ]
    )
    response = await warranty.client.post(
        "/v1/products/import?partial=true",
        content=body,
        headers={**warranty.officer, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 2 and response.json()["rejected"] == 1
    assert [(e["line"], e["field"]) for e in response.json()["errors"]] == [(2, "serial")]
    for sn in good:
        assert (await warranty.client.get(f"/v1/products/{sn}", headers=warranty.officer)).status_code == 200


async def test_an_import_in_an_unknown_format_or_with_a_bad_header_is_refused(warranty):
    wrong_type = problem(
        await warranty.client.post(
            "/v1/products/import", content="x", headers={**warranty.officer, "Content-Type": "text/plain"}
        ),
        415,
    )
    assert wrong_type["errors"][0]["field"] == "Content-Type"
    header = problem(
        await warranty.client.post(
            "/v1/products/import",
            content="serial,model\nA,B\n",
            headers={**warranty.officer, "Content-Type": "text/csv"},
        ),
        422,
    )
    assert {e["reason"] for e in header["errors"]} == {"missing column product_line", "missing column sold_on"}


async def test_coverage_of_a_serial_on_a_day_with_parts_and_the_reason(warranty):
    line = f"line-{serial()}"
    policy = await warranty.set_policy(line, 24, part_months={"Compressor": 60}, excluded_categories=["filter"])
    assert policy.status_code == 201 and policy.json()["versions"][0]["part_months"] == {"compressor": 60}
    sn = serial()
    await warranty.register(sn, date(2025, 3, 1), product_line=line)

    last_day = await warranty.client.get(f"/v1/coverage?serial={sn}&on=2027-02-28", headers=warranty.dealer("D9"))
    assert last_day.status_code == 200
    body = last_day.json()
    assert (body["covered"], body["expires_on"]) == (True, "2027-02-28")
    assert body["parts"] == {"compressor": "2030-02-28", "filter": None}
    assert body["reason"].startswith("covered: 2027-02-28 is within the 24-month warranty")
    day_after = (
        await warranty.client.get(
            f"/v1/coverage?serial={sn}&on=2027-03-01&category=compressor", headers=warranty.auth("agent")
        )
    ).json()
    assert day_after["covered"] is False and "ended on 2027-02-28" in day_after["reason"]
    assert day_after["part"] == {
        "category": "compressor",
        "covered": True,
        "until": "2030-02-28",
        "reason": day_after["part"]["reason"],
    }

    unknown = problem(await warranty.client.get("/v1/coverage?serial=SN-NOPE", headers=warranty.officer), 404)
    assert unknown["errors"][0]["field"] == "serial"


async def test_policies_are_listed_and_a_bad_policy_is_refused(warranty):
    line = f"line-{serial()}"
    await warranty.set_policy(line, 12)
    await warranty.set_policy(line, 36, effective_from="2026-01-01")
    fetched = (await warranty.client.get(f"/v1/warranty-policies/{line}", headers=warranty.dealer("D1"))).json()
    assert [(v["effective_from"], v["months"]) for v in fetched["versions"]] == [(None, 12), ("2026-01-01", 36)]
    negative = problem(await warranty.set_policy(line, -1), 422)
    assert negative["errors"][0]["field"] == "months"
    both = problem(await warranty.set_policy(line, 12, part_months={"filter": 3}, excluded_categories=["filter"]), 422)
    assert both["errors"][0]["field"] == "excluded_categories"
    assert (
        await warranty.client.post(
            "/v1/warranty-policies", json={"product_line": "x", "months": 1}, headers=warranty.dealer("D1")
        )
    ).status_code == 403
