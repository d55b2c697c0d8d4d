"""Part swaps over HTTP, for jobs warranty learned from dispatch's events on the broker: covered or
billable on the swap date, scoped to the dealer's and technician's own jobs, bad input refused whole."""

import json
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from services.warranty.tests.conftest import open_job, serial
from shared.contracts.topics import WARRANTY
from shared.eventstore.tables import events
from shared.testing.kafka import collect, headers_of, subject_is


def noon(day: date) -> str:
    return datetime.combine(day, time(12), UTC).isoformat()


async def stored_events(warranty) -> int:
    async with warranty.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(events))).scalar_one()


async def sold_unit(warranty, *, sold_on: date, months: int = 24, **policy) -> str:
    line = f"line-{serial()}"
    assert (await warranty.set_policy(line, months, **policy)).status_code == 201
    sn = serial()
    assert (await warranty.register(sn, sold_on, product_line=line)).status_code == 201
    return sn


async def test_a_swap_is_covered_and_a_wear_part_billable_with_old_and_new_part_serials(warranty):
    sn = await sold_unit(warranty, sold_on=warranty.today - timedelta(days=100), excluded_categories=["filter"])
    job = await open_job(warranty, sn, dealer_id="D1")

    pump = await warranty.swap(
        job, category="Pump", quantity=2, unit_cost="120.50", old_part_serial="OLD-1", new_part_serial="NEW-1"
    )
    assert pump.status_code == 201, pump.text
    body = pump.json()
    assert pump.headers["location"] == f"/v1/part-swaps/{body['id']}"
    assert (body["covered"], body["part_category"], body["unit_cost"], body["amount"]) == (
        True,
        "pump",
        "120.50",
        "241.00",
    )
    assert (body["old_part_serial"], body["new_part_serial"], body["currency"]) == ("OLD-1", "NEW-1", "EUR")
    assert body["reason"].startswith("covered:")
    wear = (await warranty.swap(job, category="filter", unit_cost="9.90")).json()
    assert wear["covered"] is False and "excluded wear part" in wear["reason"]

    records = await collect(warranty.kafka, WARRANTY, subject_is(sn), expected=3)
    swapped = [json.loads(r.value) for r in records if headers_of(r)["ce_type"] == "part.swapped"]
    assert [(s["part_category"], s["covered"], s["unit_cost"]) for s in swapped] == [
        ("pump", True, "120.50"),
        ("filter", False, "9.90"),
    ]
    assert swapped[0]["old_part_serial"] == "OLD-1" and swapped[0]["job_id"] == job.job_id
    listed = (await warranty.client.get(f"/v1/part-swaps?job_id={job.job_id}", headers=warranty.dealer("D1"))).json()
    assert [s["id"] for s in listed["items"]] == [body["id"], wear["id"]]


async def test_a_swap_on_the_last_covered_day_is_covered_and_the_next_day_billable(warranty):
    sn = await sold_unit(warranty, sold_on=warranty.today - timedelta(days=375), months=12)
    coverage = (await warranty.client.get(f"/v1/coverage?serial={sn}", headers=warranty.officer)).json()
    last_day = date.fromisoformat(coverage["expires_on"])
    job = await open_job(warranty, sn, at=datetime.combine(last_day - timedelta(days=1), time(9), UTC))

    on_last_day = (await warranty.swap(job, occurred_at=noon(last_day))).json()
    day_after = (await warranty.swap(job, occurred_at=noon(last_day + timedelta(days=1)))).json()
    assert (on_last_day["covered"], on_last_day["covered_until"]) == (True, last_day.isoformat())
    assert day_after["covered"] is False and f"ended on {last_day.isoformat()}" in day_after["reason"]


async def test_a_swap_on_an_unregistered_unit_counts_from_the_requests_purchase_date(warranty):
    sn = serial()
    job = await open_job(warranty, sn, purchase_date=warranty.today - timedelta(days=30))
    body = (await warranty.swap(job)).json()
    assert body["covered"] is True and f"(serial {sn} is not registered)" in body["reason"]


async def test_bad_swaps_are_problems_naming_the_field_and_write_nothing(warranty):
    sn = await sold_unit(warranty, sold_on=warranty.today - timedelta(days=10))
    job = await open_job(warranty, sn, dealer_id="D1")
    before = await stored_events(warranty)

    async def refused(status: int, field: str, headers=None, **fields) -> dict:
        response = await warranty.swap(job, headers=headers, **fields)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert field in {e["field"] for e in problem["errors"]}, problem
        return problem

    missing = await refused(404, "job_id", job_id="job-that-never-was")
    assert missing["detail"] == "job job-that-never-was does not exist"
    await refused(404, "job_id", headers=warranty.dealer("D2"))  # another dealer's job looks the same
    await refused(404, "job_id", headers=warranty.auth("technician", sub="T2"))  # not assigned to T2
    await refused(422, "quantity", quantity=-1)
    await refused(422, "quantity", quantity=0)
    await refused(422, "unit_cost", unit_cost="-0.01")
    await refused(422, "unit_cost", unit_cost="1.005")
    await refused(422, "request_id", request_id="another-request")
    await refused(422, "serial", serial="SN-SOMETHING-ELSE")
    await refused(422, "occurred_at", occurred_at=(warranty.clock.now() + timedelta(hours=1)).isoformat())
    await refused(422, "occurred_at", occurred_at=noon(warranty.today - timedelta(days=3)))  # before the job existed
    assert await stored_events(warranty) == before

    by_technician = await warranty.swap(job, headers=warranty.auth("technician", sub="T1"))
    assert by_technician.status_code == 201 and by_technician.json()["recorded_by"] == "T1"
    assert (
        await warranty.client.get(f"/v1/part-swaps/{by_technician.json()['id']}", headers=warranty.dealer("D2"))
    ).status_code == 404


async def test_a_swap_sent_again_with_its_idempotency_key_is_recorded_once(warranty):
    sn = await sold_unit(warranty, sold_on=warranty.today - timedelta(days=10))
    job = await open_job(warranty, sn, dealer_id="D1")
    headers = {**warranty.dealer("D1"), "Idempotency-Key": f"swap-{job.job_id}"}
    first = await warranty.swap(job, headers=headers)
    again = await warranty.swap(job, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    changed = await warranty.swap(job, headers=headers, quantity=3)
    assert changed.status_code == 422 and changed.json()["errors"][0]["field"] == "Idempotency-Key"
    listed = (await warranty.client.get(f"/v1/part-swaps?job_id={job.job_id}", headers=warranty.officer)).json()
    assert [s["id"] for s in listed["items"]] == [first.json()["id"]]
    assert (await warranty.client.post("/v1/part-swaps", json={})).status_code == 401
