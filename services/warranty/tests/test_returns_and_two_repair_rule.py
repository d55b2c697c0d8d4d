"""Returns and exchanges over HTTP at their day boundaries, and the two-repair rule from a unit's real job
history: requests and jobs played through Kafka as intake and dispatch publish them, swaps recorded over HTTP."""

import json
from datetime import timedelta

import pytest

from services.warranty.tests.conftest import complete_job, open_job, serial
from shared.contracts.topics import WARRANTY
from shared.testing.app import settled
from shared.testing.kafka import collect, headers_of, subject_is


async def ask(warranty, sn, kind, *, headers=None, **fields):
    return await warranty.client.post(
        "/v1/returns",
        json={"serial": sn, "kind": kind, "reason": "stopped working", **fields},
        headers=headers or warranty.auth("agent"),
    )


@pytest.mark.parametrize(
    "kind, days, status, remedy",
    [
        ("return", 7, "returned", None),
        ("return", 8, "rejected", "exchange"),
        ("exchange", 15, "exchanged", None),
        ("exchange", 16, "rejected", "repair"),
    ],
)
async def test_returns_and_exchanges_are_decided_by_the_days_since_sale(warranty, kind, days, status, remedy):
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=days))
    response = await ask(warranty, sn, kind)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["days_since_sale"], body["remedy"]) == (status, days, remedy)
    expected_type = {"returned": "unit.returned", "exchanged": "unit.exchanged", "rejected": "return.rejected"}[status]
    records = await collect(warranty.kafka, WARRANTY, subject_is(sn), expected=2)
    assert headers_of(records[-1])["ce_type"] == expected_type
    assert json.loads(records[-1].value)["return_id"] == body["id"]


async def test_bad_returns_are_problems_and_a_returned_unit_cannot_be_returned_again(warranty):
    unknown = await ask(warranty, "SN-NEVER-SOLD", "return")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "serial"
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=2), dealer_id="D1")
    assert (await ask(warranty, sn, "return", headers=warranty.dealer("D2"))).status_code == 404
    assert (await ask(warranty, sn, "refund")).json()["errors"][0]["field"] == "kind"
    assert (await ask(warranty, sn, "return", headers=warranty.dealer("D1"))).json()["status"] == "returned"
    twice = await ask(warranty, sn, "exchange")
    assert twice.status_code == 409 and "already returned" in twice.json()["detail"]


async def repair(warranty, sn, *, days_ago: int, category: str = "compressor", fixed: bool = True):
    """One job on the unit: a request and a job from intake and dispatch, a swap, then the completion."""
    started = warranty.clock.now() - timedelta(days=days_ago)
    job = await open_job(warranty, sn, at=started)
    swap = await warranty.swap(job, category=category, occurred_at=(started + timedelta(hours=1)).isoformat())
    assert swap.status_code == 201 and swap.json()["covered"], swap.text
    if fixed is not None:
        await complete_job(warranty, job, at=started + timedelta(hours=2), fixed=fixed)
    return job


async def test_two_repairs_for_the_same_fault_and_a_third_failure_entitle_the_unit_to_an_exchange(warranty):
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=200))
    first = await repair(warranty, sn, days_ago=40)
    second = await repair(warranty, sn, days_ago=20)
    assert (await ask(warranty, sn, "exchange")).json()["status"] == "rejected", "two repairs alone entitle nothing"
    third = await repair(warranty, sn, days_ago=1, fixed=None)

    records = await _entitlements(warranty, sn)
    entitled = json.loads(records[0].value)
    assert (entitled["fault_category"], entitled["repair_job_ids"], entitled["failure_job_id"]) == (
        "compressor",
        [first.job_id, second.job_id],
        third.job_id,
    )
    exchanged = (await ask(warranty, sn, "exchange")).json()
    assert (exchanged["status"], exchanged["basis"], exchanged["days_since_sale"]) == (
        "exchanged",
        "two_repair_rule",
        200,
    )
    history = await warranty.wait_for_history(sn, lambda items: any(i["type"] == "unit.exchanged" for i in items))
    assert [i["job_id"] for i in history if i["type"] == "unit.repair_recorded"] == [first.job_id, second.job_id]


async def _entitlements(warranty, sn):
    def entitled(record):
        return record.key == sn.encode() and dict(record.headers)["ce_type"] == b"unit.exchange_entitled"

    await settled(warranty.app)
    return await collect(warranty.kafka, WARRANTY, entitled, expected=1)


async def test_repairs_of_different_faults_or_an_unfixed_job_entitle_nothing(warranty):
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=200))
    await repair(warranty, sn, days_ago=40, category="compressor")
    await repair(warranty, sn, days_ago=30, category="pump")
    await repair(warranty, sn, days_ago=20, category="compressor", fixed=False)
    await repair(warranty, sn, days_ago=1, category="compressor", fixed=None)
    refused = (await ask(warranty, sn, "return")).json()
    assert refused["status"] == "rejected" and "the unit has no two-repair entitlement" in refused["reasons"]
