"""Partners' webhooks end to end: a real receiver on loopback (an allowed host), the in-process broker, intake's own
consumer feeding the durable queue (design.md, intake, Webhooks)."""

from __future__ import annotations

import uuid

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from deploy.postgres.launcher import create_database
from services.intake.tests.webhook_receiver import Receiver
from services.intake.tests.webhook_support import (
    acknowledged,
    complaint_about_job,
    dealer,
    open_for,
    subscribe,
    until_received,
    verified,
    webhook_intake,
)
from shared.testing.app import eventually
from shared.testing.contract_events import job_created
from shared.testing.kafka import envelope_for, publish


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request, tmp_path) -> dict:
    """The queue and its ordering queries on both databases intake runs on."""
    if request.param == "sqlite":
        return {}
    url = await create_database(request.getfixturevalue("postgres_server"), f"intake_{uuid.uuid4().hex[:8]}")
    return {"database_url": url}


async def test_a_dealers_subscription_receives_exactly_its_own_cases_signed_with_its_secret(
    tmp_path, event_bus, receiver, database
):
    d1, d2 = dealer(), dealer()
    everything = Receiver()
    await everything.start()
    async with webhook_intake(tmp_path, event_bus, **database) as intake:
        hook = await subscribe(intake, receiver.url, ["service_request.*", "job.*", "complaint.*"], dealer_id=d1)
        admins = await subscribe(intake, everything.url, ["complaint.acknowledged"])
        assert admins["dealer_id"] is None
        assert hook["secret"].startswith("whsec_") and hook["dealer_id"] == d1
        mine, theirs = await open_for(intake, d1), await open_for(intake, d2)
        await intake.client.post(f"/v1/service-requests/{mine}/triage", json={"mode": "onsite"}, headers=intake.agent)
        await intake.client.post(f"/v1/service-requests/{theirs}/triage", json={"mode": "onsite"}, headers=intake.agent)
        my_job, their_job = str(uuid.uuid4()), str(uuid.uuid4())
        my_complaint, their_complaint = str(uuid.uuid4()), str(uuid.uuid4())
        await publish(
            event_bus,
            envelope_for(job_created(their_job, theirs), source="dispatch"),
            envelope_for(job_created(my_job, mine), source="dispatch"),
        )
        # A complaint that names only the job, then an acknowledgement that names only the complaint: whose
        # they are is learned from job.created (consumed by now: complaints learn of jobs from it too) and
        # complaint.opened.
        await until_received(receiver, 1, lambda e: e["type"] == "job.created")
        await publish(
            event_bus,
            envelope_for(complaint_about_job(my_complaint, my_job), source="complaints"),
            envelope_for(complaint_about_job(their_complaint, their_job), source="complaints"),
        )
        await publish(
            event_bus,
            envelope_for(acknowledged(my_complaint), source="complaints"),
            envelope_for(acknowledged(their_complaint), source="complaints"),
        )

        expected = {
            "service_request.received",
            "service_request.triaged",
            "service_request.dispatched",
            "job.created",
            "complaint.opened",
            "complaint.acknowledged",
        }
        await until_received(receiver, len(expected))
        # Once the admin's receiver has D2's last event, the queue holds whatever D1's subscription got of it.
        await until_received(everything, 1, lambda e: e["subject"] == their_complaint)
        log = await intake.client.get(
            f"/v1/webhooks/{hook['id']}/deliveries", headers=intake.auth("dealer", dealer_id=d1)
        )
        assert log.status_code == 200
        assert sorted(d["event_type"] for d in log.json()["items"]) == sorted(expected)
        await eventually(
            lambda: intake.client.get(
                f"/v1/webhooks/{hook['id']}/deliveries", headers=intake.auth("dealer", dealer_id=d1)
            ),
            until=lambda answer: {d["status"] for d in answer.json()["items"]} == {"delivered"},
        )
    await everything.stop()

    events = [verified(r, hook["secret"]) for r in receiver.received]
    assert {e["type"] for e in events} == expected
    subjects = {e["subject"] for e in events}
    assert subjects == {mine, my_job, my_complaint}
    assert not {theirs, their_job, their_complaint} & {e["subject"] for e in events}
    assert all(e["data"].get("dealer_id") in (None, d1) for e in events)
    for r, e in zip(receiver.received, events, strict=True):
        assert r.headers["webhook-id"] == e["id"]
        assert r.headers["content-type"] == "application/cloudevents+json"
        assert e["specversion"] == "1.0" and e["datacontenttype"] == "application/json"
        assert {"source", "time", "subject", "correlationid", "causationid", "sequence"} <= set(e)
    with pytest.raises(WebhookVerificationError):
        verified(receiver.received[0], "whsec_" + "A" * 44)
