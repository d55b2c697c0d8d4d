"""One timeline per unit across dealers, built from intake's, dispatch's and warranty's events; a dealer sees
only its own part of it."""

import uuid
from datetime import timedelta

from services.warranty.tests.conftest import complete_job, open_job, received, serial
from shared.contracts.dispatch import JobArrived, JobCreated, RevisitDone
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.intake import ServiceRequestClosed, ServiceRequestQuoteExpiryWithdrawn
from shared.testing.kafka import envelope_for, publish


async def test_a_units_history_runs_across_dealers_and_services_in_business_time(warranty):
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=90), dealer_id="D1")  # sold by D1 ...
    started = warranty.clock.now() - timedelta(days=2)
    job = await open_job(warranty, sn, dealer_id="D2", at=started)  # ... serviced by D2
    await publish(
        warranty.kafka,
        envelope_for(
            JobArrived(job_id=job.job_id, request_id=job.request_id, technician_id="T1"),
            time=started + timedelta(hours=1),
        ),
    )
    swap = (
        await warranty.swap(
            job,
            old_part_serial="P-OLD-7",
            new_part_serial="P-NEW-8",
            occurred_at=(started + timedelta(hours=2)).isoformat(),
        )
    ).json()
    await complete_job(warranty, job, at=started + timedelta(hours=3))
    await publish(
        warranty.kafka,
        envelope_for(
            RevisitDone(job_id=job.job_id, request_id=job.request_id, satisfaction=5, channel="phone"),
            time=started + timedelta(days=1),
        ),
    )
    claim = await warranty.client.post(
        "/v1/claims",
        json={"job_id": job.job_id, "labour_minutes": 60, "swap_ids": [swap["id"]]},
        headers=warranty.dealer("D2"),
    )
    assert claim.status_code == 201

    items = await warranty.wait_for_history(sn, lambda items: any(i["type"] == "revisit.done" for i in items))
    # The sale was registered (and the claim filed) today, after the service: each entry at its own time.
    assert [i["type"] for i in items] == [
        "service_request.received",
        "warranty.checked",
        "job.created",
        "job.assigned",
        "job.arrived",
        "part.swapped",
        "job.completed",
        "unit.repair_recorded",
        "revisit.done",
        "product.registered",
        "claim.submitted",
        "claim.approved",
    ]
    by_type = {i["type"]: i for i in items}
    assert [i["time"] for i in items] == sorted(i["time"] for i in items), "business time order"
    assert by_type["part.swapped"]["detail"]["old_part_serial"] == "P-OLD-7"
    assert by_type["part.swapped"]["detail"]["new_part_serial"] == "P-NEW-8"
    assert by_type["product.registered"]["dealer_id"] == "D1" and by_type["job.created"]["dealer_id"] == "D2"
    assert "customer" not in by_type["service_request.received"]["detail"], "contact details stay with intake"
    assert {i["source"] for i in items} >= {"intake", "dispatch", "warranty", "test"}

    d2 = (await warranty.history(sn, warranty.dealer("D2"))).json()["items"]
    assert "product.registered" not in {i["type"] for i in d2} and {i["dealer_id"] for i in d2} == {"D2"}
    assert {"part.swapped", "claim.approved", "job.completed"} <= {i["type"] for i in d2}
    d1 = (await warranty.history(sn, warranty.dealer("D1"))).json()["items"]
    assert [i["type"] for i in d1] == ["product.registered"]
    stranger = await warranty.history(sn, warranty.dealer("D3"))
    assert stranger.status_code == 404

    pages, cursor = [], None
    while True:
        query = "limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = (await warranty.client.get(f"/v1/units/{sn}/history?{query}", headers=warranty.officer)).json()
        pages.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == items


async def test_the_history_is_the_same_whichever_topic_arrives_first(warranty):
    sn = serial()
    request_id, job_id = str(uuid.uuid4()), f"job-{uuid.uuid4().hex[:8]}"
    at = warranty.clock.now() - timedelta(hours=5)
    # dispatch's job first, intake's request (which names the unit) a moment later
    await publish(
        warranty.kafka,
        envelope_for(
            JobCreated(
                job_id=job_id,
                request_id=request_id,
                mode=ServiceMode.onsite,
                priority=Priority.P2,
                region="north",
                product_line="tractor",
                dealer_id="D1",
            ),
            time=at + timedelta(minutes=5),
        ),
    )
    await publish(warranty.kafka, envelope_for(received(sn, request_id=request_id), source="intake", time=at))
    items = await warranty.wait_for_history(
        sn, lambda items: {"job.created", "warranty.checked"} <= {i["type"] for i in items}
    )
    assert [i["type"] for i in items] == ["service_request.received", "warranty.checked", "job.created"]


async def test_a_close_by_the_quotes_expiry_that_a_late_acceptance_withdrew_shows_its_withdrawal_after_it(warranty):
    sn, request_id = serial(), str(uuid.uuid4())
    at = warranty.clock.now() - timedelta(days=3)
    valid_until, accepted_at = at + timedelta(days=2), at + timedelta(days=1)
    await publish(warranty.kafka, envelope_for(received(sn, request_id=request_id), source="intake", time=at))
    await publish(
        warranty.kafka,
        envelope_for(ServiceRequestClosed(request_id=request_id, outcome="quote_expired"), time=valid_until),
        envelope_for(
            ServiceRequestQuoteExpiryWithdrawn(request_id=request_id, quote_id="q1", accepted_at=accepted_at),
            time=valid_until,
        ),
    )
    items = await warranty.wait_for_history(
        sn, lambda items: "service_request.quote_expiry_withdrawn" in {i["type"] for i in items}
    )
    assert [i["type"] for i in items][-2:] == ["service_request.closed", "service_request.quote_expiry_withdrawn"]
    assert items[-1]["detail"]["quote_id"] == "q1" and items[-1]["dealer_id"] == "D1"
