"""Bad input is refused before anything is written, and an answer that cannot be given leaves no write behind
(design.md, HTTP API: never a 500, never a write left behind)."""

from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import func, select

from shared.eventstore.tables import events


async def stored_events(warranty) -> int:
    async with warranty.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(events))).scalar_one()


async def test_a_serial_beyond_latin_1_is_registered_once_with_a_percent_encoded_location(warranty):
    serial = "SN-€-号-1"
    body = {
        "serial": serial,
        "model": "T-100",
        "product_line": "tractor",
        "sold_on": (warranty.today - timedelta(days=3)).isoformat(),
        "dealer_id": "D1",
    }
    headers = {**warranty.officer, "Idempotency-Key": "unicode-serial"}
    first = await warranty.client.post("/v1/products", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == "/v1/products/" + quote(serial, safe="")
    assert (await warranty.client.get(first.headers["location"], headers=warranty.officer)).json()["serial"] == serial
    retried = await warranty.client.post("/v1/products", json=body, headers=headers)
    assert (retried.status_code, retried.json()) == (201, first.json())


async def test_a_product_line_beyond_latin_1_sets_one_policy_version(warranty):
    before = await stored_events(warranty)
    answer = await warranty.set_policy("культиватор", months=24)
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == "/v1/warranty-policies/" + quote("культиватор", safe="")
    assert await stored_events(warranty) == before + 1


async def test_control_characters_in_a_serial_or_a_name_are_a_422_naming_the_field_and_store_nothing(warranty):
    before = await stored_events(warranty)
    sold_on = (warranty.today - timedelta(days=3)).isoformat()
    for serial, model in (("SN-\x01-1", "T-100"), ("SN-ok-2", "T-\x00-100"), ("SN-ok-3", "T\x1b[31m")):
        body = {"serial": serial, "model": model, "product_line": "tractor", "sold_on": sold_on, "dealer_id": "D1"}
        answer = await warranty.client.post("/v1/products", json=body, headers=warranty.officer)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] in ("serial", "model")
    policy = await warranty.set_policy("line\x07bell", months=12)
    assert policy.status_code == 422 and policy.json()["errors"][0]["field"] == "product_line"
    assert await stored_events(warranty) == before


async def test_forged_cursors_of_lists_and_of_a_units_history_are_a_400(warranty):
    import base64
    import json

    def forged(after) -> str:
        return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")

    for url in (
        f"/v1/products?cursor={forged(10**30)}",
        f"/v1/claims?cursor={forged(2**64)}",
        f"/v1/part-swaps?cursor={forged(-(2**70))}",
        f"/v1/warranty-policies?cursor={forged('x' * 250)}",
        f"/v1/units/SN-1/history?cursor={forged(['2026-01-01T00:00:00+00:00', 10**30])}",
        f"/v1/units/SN-1/history?cursor={forged(['0001-01-01T00:00:00+14:00', 1])}",
        f"/v1/units/SN-1/history?cursor={forged(['2026-01-01T00:00:00', 1])}",
    ):
        answer = await warranty.client.get(url, headers=warranty.officer)
        assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "cursor", (url, answer.text)


async def test_the_bulk_import_accepts_a_body_over_the_default_limit_and_a_product_does_not(warranty):
    big = "serial,model,product_line,sold_on,dealer_id\n" + "SN-1," + "m" * (1536 * 1024) + ",tractor,2025-01-01,D1\n"
    imported = await warranty.client.post(
        "/v1/products/import", content=big.encode(), headers={**warranty.officer, "Content-Type": "text/csv"}
    )
    assert imported.status_code == 422, imported.text[:200]  # read and judged row by row, not refused unread
    product = await warranty.client.post(
        "/v1/products", content=big.encode(), headers={**warranty.officer, "Content-Type": "application/json"}
    )
    assert product.status_code == 413


async def test_a_dealer_registering_another_dealers_serial_gets_a_409_that_says_nothing_about_that_sale(warranty):
    serial = "SN-oracle-1"
    assert (await warranty.register(serial, warranty.today - timedelta(days=40), dealer_id="D1")).status_code == 201
    body = {
        "serial": serial,
        "model": "T-100",
        "product_line": "tractor",
        "sold_on": (warranty.today - timedelta(days=1)).isoformat(),
    }
    conflict = await warranty.client.post("/v1/products", json=body, headers=warranty.dealer("D2"))
    assert conflict.status_code == 409
    assert (warranty.today - timedelta(days=40)).isoformat() not in conflict.text
    assert "existing_id" not in conflict.json()
    own = await warranty.client.post("/v1/products", json=body, headers=warranty.dealer("D1"))
    assert own.status_code == 409 and "sold on" in own.json()["detail"], "its own sale is described"
