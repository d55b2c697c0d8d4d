"""One claim per job even when two are filed at once, and a read model rebuilt from the event store equals the
live one."""

import asyncio
import json
from datetime import timedelta

from sqlalchemy import select

from services.warranty.read_model import claims, policies, products, swaps
from services.warranty.rebuild import rebuild
from services.warranty.tests.conftest import complete_job, open_job, serial
from shared.eventstore.store import EventStore


async def test_two_claims_filed_at_once_for_one_job_make_one_claim(warranty):
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=30))
    job = await open_job(warranty, sn)
    await complete_job(warranty, job, at=warranty.clock.now() - timedelta(minutes=30))
    body = {"job_id": job.job_id, "labour_minutes": 30, "swap_ids": []}
    results = await asyncio.gather(
        *(warranty.client.post("/v1/claims", json=body, headers=warranty.dealer("D1")) for _ in range(3))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409]
    listed = (await warranty.client.get(f"/v1/claims?job_id={job.job_id}", headers=warranty.officer)).json()
    assert len(listed["items"]) == 1


async def test_a_read_model_rebuilt_from_the_event_store_equals_the_live_one(warranty):
    line = f"line-{serial()}"
    await warranty.set_policy(line, 24, excluded_categories=["filter"])
    await warranty.set_policy(line, 36, effective_from="2026-01-01")
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=20), product_line=line, dealer_id="D1")
    job = await open_job(warranty, sn)
    covered = (await warranty.swap(job, category="pump")).json()
    await warranty.swap(job, category="filter")
    await complete_job(warranty, job, at=warranty.clock.now() - timedelta(minutes=10))
    claim = (
        await warranty.client.post(
            "/v1/claims",
            json={"job_id": job.job_id, "labour_minutes": 20, "swap_ids": [covered["id"]]},
            headers=warranty.dealer("D1"),
        )
    ).json()
    await warranty.client.post(
        f"/v1/claims/{claim['id']}/reject", json={"reason": "invoice missing"}, headers=warranty.officer
    )
    await warranty.client.post(
        "/v1/returns", json={"serial": sn, "kind": "exchange", "reason": "noisy"}, headers=warranty.auth("agent")
    )
    db = warranty.app.state.runtime.db

    async def snapshot():
        async with db.read() as conn:
            return {
                table.name: [
                    {k: (json.loads(v) if k == "view" else v) for k, v in row._asdict().items()}
                    for row in (await conn.execute(select(table).order_by(*table.primary_key))).all()
                ]
                for table in (products, policies, swaps, claims)
            }

    live = await snapshot()
    before = (await warranty.history(sn)).json()["items"]
    assert await rebuild(db, EventStore(source="warranty")) >= 4
    assert await snapshot() == live
    assert (await warranty.history(sn)).json()["items"] == before
