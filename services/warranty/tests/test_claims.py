"""Dealer claims over HTTP for jobs dispatch announced on the broker: adjudicated by the rules with their
reasons, officers' overrides with who and why, one claim per job, and a dealer sees only its own."""

import json
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select

from services.warranty.tests.conftest import Job, complete_job, open_job, serial
from shared.contracts.topics import WARRANTY
from shared.eventstore.tables import events
from shared.testing.kafka import collect, headers_of, subject_is


async def stored_events(warranty) -> int:
    async with warranty.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(events))).scalar_one()


async def completed_job(warranty, *, dealer_id="D1", completed_days_ago: float = 1, sold_days_ago: int = 100):
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=sold_days_ago))
    job = await open_job(
        warranty, sn, dealer_id=dealer_id, at=warranty.clock.now() - timedelta(days=completed_days_ago, hours=3)
    )
    return job


async def claim(warranty, job, *, labour_minutes=90, swap_ids=(), headers=None):
    return await warranty.client.post(
        "/v1/claims",
        json={"job_id": job.job_id, "labour_minutes": labour_minutes, "swap_ids": list(swap_ids)},
        headers=headers or warranty.dealer(job.dealer_id),
    )


def verdicts(view) -> dict[str, bool]:
    return {r["rule"]: r["ok"] for r in view["reasons"]}


async def test_a_claim_within_the_rules_is_approved_with_labour_and_covered_parts_only(warranty):
    job = await completed_job(warranty)
    pump = (await warranty.swap(job, category="pump", quantity=2, unit_cost="120.00")).json()
    other_job = await open_job(warranty, job.serial, dealer_id="D1")
    foreign = (await warranty.swap(other_job, category="pump")).json()
    await complete_job(warranty, job, at=warranty.clock.now() - timedelta(days=1))

    response = await claim(warranty, job, labour_minutes=90, swap_ids=[pump["id"]])
    assert response.status_code == 201, response.text
    view = response.json()
    assert response.headers["location"] == f"/v1/claims/{view['id']}"
    assert view["status"] == "approved" and view["dealer_id"] == "D1" and view["serial"] == job.serial
    assert view["amounts"] == {"labour": "90.00", "parts": "240.00", "total": "330.00", "currency": "EUR"}
    assert verdicts(view) == {
        "coverage_valid": True,
        "swaps_belong_to_job": True,
        "filed_within_limit": True,
        "defective_part_returned": True,
    }
    assert view["decisions"][0]["decided_by"] == "rules"

    records = await collect(warranty.kafka, WARRANTY, subject_is(view["id"]), expected=2)
    assert [headers_of(r)["ce_type"] for r in records] == ["claim.submitted", "claim.approved"]
    assert json.loads(records[0].value)["total_amount"] == "330.00"

    mixed = await claim(warranty, other_job, swap_ids=[foreign["id"], pump["id"]])
    assert mixed.status_code == 409, "the other job is not completed yet"
    await complete_job(warranty, other_job, at=warranty.clock.now() - timedelta(hours=1))
    mixed = (await claim(warranty, other_job, swap_ids=[foreign["id"], pump["id"]])).json()
    assert mixed["status"] == "rejected" and verdicts(mixed)["swaps_belong_to_job"] is False
    assert pump["id"] in next(r["detail"] for r in mixed["reasons"] if r["rule"] == "swaps_belong_to_job")


async def test_a_claim_filed_on_the_30th_day_passes_and_on_the_31st_is_rejected_then_overridden(warranty):
    on_time, late = await completed_job(warranty), await completed_job(warranty)
    completed_at = datetime.combine(warranty.today, time(0, 0, 1), UTC)  # whatever the hour now
    await complete_job(warranty, on_time, at=completed_at)
    await complete_job(warranty, late, at=completed_at)

    warranty.clock.advance(days=30)
    assert (await claim(warranty, on_time)).json()["status"] == "approved"
    warranty.clock.advance(days=1)
    rejected = (await claim(warranty, late)).json()
    assert rejected["status"] == "rejected" and verdicts(rejected)["filed_within_limit"] is False
    assert "filed 31 day(s) after the job's completion" in rejected["reasons"][2]["detail"]

    url = f"/v1/claims/{rejected['id']}"
    dealer_tries = await warranty.client.post(
        f"{url}/approve", json={"reason": "please"}, headers=warranty.dealer("D1")
    )
    assert dealer_tries.status_code == 403
    approved = await warranty.client.post(
        f"{url}/approve", json={"reason": "courier strike; papers were on time"}, headers=warranty.officer
    )
    assert approved.status_code == 200
    decision = approved.json()["decisions"][-1]
    assert approved.json()["status"] == "approved"
    assert (decision["decided_by"], decision["override"], decision["note"]) == (
        "officer-olga",
        True,
        "courier strike; papers were on time",
    )
    again = await warranty.client.post(f"{url}/approve", json={"reason": "twice"}, headers=warranty.officer)
    assert again.status_code == 409 and again.json()["current_status"] == "approved"
    records = await collect(warranty.kafka, WARRANTY, subject_is(rejected["id"]), expected=3)
    overridden = json.loads(records[-1].value)
    assert (headers_of(records[-1])["ce_type"], overridden["decided_by"], overridden["override"]) == (
        "claim.approved",
        "officer-olga",
        True,
    )


async def test_claims_refused_before_adjudication_write_nothing(warranty):
    job = await completed_job(warranty, dealer_id="D1")
    await complete_job(warranty, job, at=warranty.clock.now() - timedelta(hours=2))
    first = (await claim(warranty, job)).json()
    before = await stored_events(warranty)

    second = await claim(warranty, job)
    assert second.status_code == 409 and second.json()["existing_id"] == first["id"]
    assert second.json()["errors"][0]["field"] == "job_id"
    other_dealer = await claim(warranty, job, headers=warranty.dealer("D2"))
    assert other_dealer.status_code == 404 and other_dealer.json()["errors"][0]["field"] == "job_id"
    unknown = await claim(warranty, Job(job.serial, job.request_id, "job-nope", "D1"))
    assert unknown.status_code == 404
    negative = await claim(warranty, job, labour_minutes=-5)
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "labour_minutes"
    repeated = await claim(warranty, job, swap_ids=["s1", "s1"])
    assert repeated.status_code == 422 and repeated.json()["errors"][0]["field"] == "swap_ids"
    assert (await claim(warranty, job, headers=warranty.officer)).status_code == 403
    assert await stored_events(warranty) == before


async def test_a_claim_for_a_unit_out_of_warranty_is_rejected_with_the_coverage_reason(warranty):
    job = await completed_job(warranty, sold_days_ago=800)  # the default policy: 12 months
    await complete_job(warranty, job, at=warranty.clock.now() - timedelta(hours=2))
    view = (await claim(warranty, job)).json()
    assert view["status"] == "rejected" and verdicts(view)["coverage_valid"] is False
    assert "default 12-month warranty" in view["reasons"][0]["detail"]


async def test_a_dealer_sees_and_lists_only_its_own_claims(warranty):
    mine, theirs = await completed_job(warranty, dealer_id="D1"), await completed_job(warranty, dealer_id="D2")
    for job in (mine, theirs):
        await complete_job(warranty, job, at=warranty.clock.now() - timedelta(hours=2))
    my_claim, their_claim = (await claim(warranty, mine)).json(), (await claim(warranty, theirs)).json()

    d1 = warranty.dealer("D1")
    assert (await warranty.client.get(f"/v1/claims/{my_claim['id']}", headers=d1)).status_code == 200
    hidden = await warranty.client.get(f"/v1/claims/{their_claim['id']}", headers=d1)
    assert hidden.status_code == 404 and their_claim["id"] in hidden.json()["detail"]
    listed = (await warranty.client.get("/v1/claims?limit=500", headers=d1)).json()
    assert {c["dealer_id"] for c in listed["items"]} == {"D1"}
    assert (await warranty.client.get("/v1/claims?dealer_id=D2", headers=d1)).status_code == 403
    assert (
        await warranty.client.post(f"/v1/claims/{their_claim['id']}/reject", json={"reason": "x"}, headers=d1)
    ).status_code == 403

    everyone = (await warranty.client.get("/v1/claims?limit=1", headers=warranty.officer)).json()
    assert everyone["items"][0]["id"] == their_claim["id"], "newest first"
    rest = (
        await warranty.client.get(f"/v1/claims?limit=1&cursor={everyone['next_cursor']}", headers=warranty.officer)
    ).json()
    assert rest["items"][0]["id"] == my_claim["id"]
