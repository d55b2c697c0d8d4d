"""Stream ids are namespaced by aggregate type (design.md, warranty): no id chosen by a caller lands in another
aggregate's stream, and the events on Kafka keep the business id as their subject."""

from datetime import timedelta

from sqlalchemy import select

from services.warranty.rebuild import rebuild
from services.warranty.tests.conftest import complete_job
from services.warranty.tests.test_claims import claim, completed_job
from shared.contracts.topics import WARRANTY
from shared.eventstore.tables import events
from shared.testing.kafka import collect, headers_of, subject_is


async def streams_of(warranty, business_id: str) -> dict[str, list[str]]:
    async with warranty.app.state.runtime.db.read() as conn:
        rows = await conn.execute(
            select(events.c.stream_id, events.c.type)
            .where(events.c.stream_id.like(f"%{business_id}"))
            .order_by(events.c.position)
        )
        streams: dict[str, list[str]] = {}
        for row in rows:
            streams.setdefault(row.stream_id, []).append(row.type)
        return streams


async def test_a_product_whose_serial_is_another_dealers_claim_id_gets_a_stream_of_its_own(warranty):
    job = await completed_job(warranty, dealer_id="D2")
    await complete_job(warranty, job, at=warranty.clock.now() - timedelta(hours=1))
    filed = await claim(warranty, job)
    assert filed.status_code == 201, filed.text
    claim_id = filed.json()["id"]

    body = {
        "serial": claim_id,
        "model": "T-100",
        "product_line": "tractor",
        "sold_on": (warranty.today - timedelta(days=2)).isoformat(),
    }
    registered = await warranty.client.post("/v1/products", json=body, headers=warranty.dealer("D1"))
    assert registered.status_code == 201, registered.text
    assert await streams_of(warranty, claim_id) == {
        f"claim:{claim_id}": ["claim.submitted", "claim.approved"],
        f"product:{claim_id}": ["product.registered"],
    }

    approve = await warranty.client.post(
        f"/v1/claims/{job.serial}/approve", json={"reason": "looks fine"}, headers=warranty.officer
    )
    assert approve.status_code == 404, approve.text

    assert await rebuild(warranty.app.state.runtime.db, warranty.app.state.application.kernel.store) >= 2
    assert (await warranty.client.get(f"/v1/products/{claim_id}", headers=warranty.dealer("D1"))).status_code == 200
    assert (await warranty.client.get(f"/v1/claims/{claim_id}", headers=warranty.dealer("D2"))).json()[
        "status"
    ] == "approved"

    records = await collect(warranty.kafka, WARRANTY, subject_is(claim_id), expected=3)
    assert sorted(headers_of(r)["ce_type"] for r in records) == [
        "claim.approved",
        "claim.submitted",
        "product.registered",
    ]
    assert {r.key.decode() for r in records} == {claim_id}, "the Kafka subject and key stay the business id"
