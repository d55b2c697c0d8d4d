"""The same service on PostgreSQL (production's database): bulk import, upserts, claims' unique key, cursors,
the timeline and a rebuild, in one scenario against a real server (TEST_POSTGRES_URL, or one started here)."""

from datetime import timedelta

import pytest

from deploy.postgres.launcher import postgres_for_tests
from services.warranty.rebuild import rebuild
from services.warranty.tests.conftest import complete_job, open_job, serial
from shared.eventstore.store import EventStore


@pytest.fixture(scope="module")
def postgres_server():
    with postgres_for_tests() as url:
        yield url


async def test_a_units_whole_story_works_the_same_on_postgresql(warranty_on_postgres):
    w, client = warranty_on_postgres, warranty_on_postgres.client
    line = f"line-{serial()}"
    assert (await w.set_policy(line, 24, part_months={"pump": 36}, excluded_categories=["filter"])).status_code == 201
    assert (await w.set_policy(line, 12, effective_from="2026-01-01")).status_code == 201
    prefix = serial()
    rows = "".join(f"{prefix}-{i},T-100,{line},2025-03-01,D1\n" for i in range(1500))
    imported = await client.post(
        "/v1/products/import",
        content="serial,model,product_line,sold_on,dealer_id\n" + rows,
        headers={**w.officer, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 201 and imported.json()["imported"] == 1500

    sn = f"{prefix}-7"
    job = await open_job(w, sn)
    pump = (await w.swap(job, category="pump")).json()
    assert pump["covered"] is True and (await w.swap(job, category="filter")).json()["covered"] is False
    await complete_job(w, job, at=w.clock.now() - timedelta(minutes=5))
    claim = await client.post(
        "/v1/claims",
        json={"job_id": job.job_id, "labour_minutes": 10, "swap_ids": [pump["id"]]},
        headers=w.dealer("D1"),
    )
    assert claim.status_code == 201 and claim.json()["status"] == "approved"
    second = await client.post("/v1/claims", json={"job_id": job.job_id, "labour_minutes": 10}, headers=w.dealer("D1"))
    assert second.status_code == 409
    assert (
        await client.post(
            f"/v1/claims/{claim.json()['id']}/reject", json={"reason": "invoice missing"}, headers=w.officer
        )
    ).status_code == 200
    returned = await client.post(
        "/v1/returns", json={"serial": sn, "kind": "return", "reason": "noisy"}, headers=w.auth("agent")
    )
    assert returned.json()["status"] == "rejected"

    coverage = (await client.get(f"/v1/coverage?serial={sn}&on=2027-02-28&category=pump", headers=w.officer)).json()
    assert coverage["covered"] is True and coverage["part"]["until"] == "2028-02-29"
    history = (await w.history(sn)).json()["items"]
    first = (await client.get(f"/v1/units/{sn}/history?limit=2", headers=w.officer)).json()
    rest = (
        await client.get(f"/v1/units/{sn}/history?limit=500&cursor={first['next_cursor']}", headers=w.officer)
    ).json()
    assert first["items"] + rest["items"] == history and len(history) >= 10
    assert await rebuild(w.app.state.runtime.db, EventStore(source="warranty")) > 1500
    assert (await w.history(sn)).json()["items"] == history
