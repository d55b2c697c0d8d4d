"""Defective-part returns over HTTP: recorded once per swap, with the old part serial the swap took out, in the
dealer's scope; with `RETURN_REQUIRED_CATEGORIES` set, a claim for a covered swap of such a category fails the
rule `defective_part_returned` until the part has come back, and a claim already decided stays as it is."""

from datetime import timedelta

import pytest

from services.warranty.tests.conftest import (
    complete_job,
    open_job,
    serial,
    warranty_running,
)
from services.warranty.tests.parts_helpers import stored_events


@pytest.fixture
async def strict_warranty(tmp_path, event_bus):
    """Warranty that wants the defective compressors back."""
    async with warranty_running(tmp_path, event_bus, return_required_categories="Compressor, motor") as warranty:
        yield warranty


async def part_return(w, swap_id: str, old_part_serial: str = "OLD-1", headers=None, condition: str = "defective"):
    return await w.client.post(
        "/v1/part-returns",
        json={"swap_id": swap_id, "old_part_serial": old_part_serial, "condition": condition},
        headers=headers or w.auth("technician", sub="T1"),
    )


async def claim(w, job, swap_ids):
    answer = await w.client.post(
        "/v1/claims",
        json={"job_id": job.job_id, "labour_minutes": 60, "swap_ids": swap_ids},
        headers=w.dealer(job.dealer_id),
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def rule(view, name: str) -> dict:
    return next(r for r in view["reasons"] if r["rule"] == name)


async def repaired_job(w, *, compressor_old_serial: str = "OLD-1"):
    """A covered unit's job that swapped a compressor (must come back) and a pump (need not), completed."""
    sn = serial()
    assert (await w.register(sn, w.today - timedelta(days=60))).status_code == 201
    job = await open_job(w, sn, at=w.clock.now() - timedelta(hours=6))
    compressor = (await w.swap(job, category="compressor", old_part_serial=compressor_old_serial)).json()
    pump = (await w.swap(job, category="pump")).json()
    await complete_job(w, job, at=w.clock.now() - timedelta(hours=1))
    return job, compressor, pump


async def test_a_claim_fails_the_return_rule_until_the_defective_compressor_is_back_and_a_decided_one_stays(
    strict_warranty,
):
    w = strict_warranty
    early, compressor, pump = await repaired_job(w)
    rejected = await claim(w, early, [compressor["id"], pump["id"]])
    assert rejected["status"] == "rejected"
    assert rule(rejected, "defective_part_returned") == {
        "rule": "defective_part_returned",
        "ok": False,
        "detail": f"the defective part of swap(s) {compressor['id']} has not come back",
    }
    returned = await part_return(w, compressor["id"])
    assert returned.status_code == 201, returned.text
    assert returned.headers["location"] == f"/v1/part-returns/{returned.json()['id']}"
    assert (returned.json()["part_category"], returned.json()["condition"]) == ("compressor", "defective")
    shown = await w.client.get(returned.headers["location"], headers=w.dealer("D1"))
    assert shown.json() == returned.json()
    assert (await w.client.get(returned.headers["location"], headers=w.dealer("D2"))).status_code == 404
    still = (await w.client.get(f"/v1/claims/{rejected['id']}", headers=w.officer)).json()
    assert still["status"] == "rejected" and len(still["decisions"]) == 1  # decided claims are not re-judged

    on_time, compressor, pump = await repaired_job(w)
    assert (await part_return(w, compressor["id"], headers=w.dealer("D1"))).status_code == 201
    approved = await claim(w, on_time, [compressor["id"], pump["id"]])
    assert approved["status"] == "approved" and rule(approved, "defective_part_returned")["ok"] is True
    history = (await w.history(on_time.serial)).json()["items"]
    assert [i["detail"]["swap_id"] for i in history if i["type"] == "part.returned"] == [compressor["id"]]
    listed = await w.client.get(f"/v1/part-returns?job_id={on_time.job_id}", headers=w.dealer("D1"))
    assert [r["swap_id"] for r in listed.json()["items"]] == [compressor["id"]]


async def test_bad_returns_are_refused_naming_the_field_and_write_nothing(strict_warranty):
    w = strict_warranty
    _, compressor, _ = await repaired_job(w, compressor_old_serial="OLD-7")
    before = await stored_events(w)
    unknown = await part_return(w, "no-such-swap")
    wrong_serial = await part_return(w, compressor["id"], old_part_serial="OLD-8")
    other_dealer = await part_return(w, compressor["id"], "OLD-7", headers=w.dealer("D2"))
    other_technician = await part_return(w, compressor["id"], "OLD-7", headers=w.auth("technician", sub="T9"))
    bad_condition = await part_return(w, compressor["id"], "OLD-7", condition="smells")
    assert (unknown.status_code, unknown.json()["errors"][0]["field"]) == (404, "swap_id")
    assert (wrong_serial.status_code, wrong_serial.json()["errors"][0]["field"]) == (422, "old_part_serial")
    assert (other_dealer.status_code, other_technician.status_code) == (404, 404)
    assert bad_condition.status_code == 422 and "condition" in bad_condition.text
    assert await stored_events(w) == before
    assert (await part_return(w, compressor["id"], "OLD-7")).status_code == 201
    twice = await part_return(w, compressor["id"], "OLD-7")
    assert (twice.status_code, twice.json()["errors"][0]["field"]) == (409, "swap_id")
