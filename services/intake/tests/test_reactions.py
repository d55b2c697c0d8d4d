"""intake follows warranty and dispatch through the event bus (in process in the fast tier, with Kafka's records and offsets): events the test publishes as those services would."""

import json
import uuid

from shared.contracts.dispatch import JobArrived, JobCompleted, RevisitDone
from shared.contracts.topics import DISPATCH, INTAKE, dlq_for
from shared.contracts.warranty import WarrantyChecked
from shared.testing.app import eventually
from shared.testing.contract_events import job_created
from shared.testing.kafka import collect, envelope_for, headers_of, publish, publish_raw, subject_is


async def status_of(intake, request_id):
    return (await intake.client.get(f"/v1/service-requests/{request_id}", headers=intake.agent)).json()


async def wait_for(intake, request_id, predicate):
    return await eventually(lambda: status_of(intake, request_id), until=predicate)


async def triaged_onsite(intake):
    request_id = (await intake.open()).json()["id"]
    await intake.client.post(f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"}, headers=intake.agent)
    return request_id


async def test_intake_shows_warrantys_coverage_verdict_chained_to_its_cause(intake, event_bus):
    request_id = (await intake.open(serial="SN-COV")).json()["id"]
    cause = envelope_for(
        WarrantyChecked(
            request_id=request_id,
            serial="SN-COV",
            covered=True,
            expires_on="2027-03-01",
            reason="within 24 months of sale",
        ),
        source="warranty",
    )
    await publish(event_bus, cause)
    view = await wait_for(intake, request_id, lambda v: v["coverage"] is not None)
    assert view["coverage"] == {"covered": True, "expires_on": "2027-03-01", "reason": "within 24 months of sale"}

    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=2)
    reaction = headers_of(records[-1])
    assert reaction["ce_type"] == "service_request.coverage_recorded"
    assert reaction["ce_causationid"] == cause.id
    assert reaction["ce_correlationid"] == cause.correlationid
    assert reaction["ce_time"] == headers_of(records[-1])["ce_time"]


async def test_the_request_status_follows_the_job_to_closed(intake, event_bus):
    request_id = await triaged_onsite(intake)
    job_id = str(uuid.uuid4())
    await publish(event_bus, envelope_for(job_created(job_id, request_id), source="dispatch"))
    view = await wait_for(intake, request_id, lambda v: v["status"] == "dispatched")
    assert view["job_id"] == job_id

    await publish(event_bus, envelope_for(JobArrived(job_id=job_id, request_id=request_id, technician_id="T1")))
    await wait_for(intake, request_id, lambda v: v["status"] == "in_service")
    await publish(
        event_bus,
        envelope_for(
            JobCompleted(
                job_id=job_id, request_id=request_id, technician_id="T1", fixed=False, resolution="part on order"
            )
        ),
    )
    await publish(
        event_bus,
        envelope_for(
            JobCompleted(
                job_id=job_id, request_id=request_id, technician_id="T1", fixed=True, resolution="replaced pump"
            )
        ),
    )
    await wait_for(intake, request_id, lambda v: v["status"] == "resolved")
    await publish(
        event_bus,
        envelope_for(RevisitDone(job_id=job_id, request_id=request_id, satisfaction=5, nps=9, channel="phone")),
    )
    view = await wait_for(intake, request_id, lambda v: v["status"] == "closed")
    assert [h["type"] for h in view["history"]] == [
        "service_request.received",
        "service_request.triaged",
        "service_request.dispatched",
        "service_request.service_started",
        "service_request.resolved",
        "service_request.closed",
    ]


async def test_the_same_event_delivered_twice_has_one_effect(intake, event_bus):
    request_id = await triaged_onsite(intake)
    job_id = str(uuid.uuid4())
    created = envelope_for(job_created(job_id, request_id), source="dispatch")
    await publish(event_bus, created, created)
    await wait_for(intake, request_id, lambda v: v["status"] == "dispatched")
    # A marker after the duplicate: once it is applied, the duplicate has certainly been seen.
    await publish(
        event_bus, created, envelope_for(JobArrived(job_id=job_id, request_id=request_id, technician_id="T1"))
    )
    view = await wait_for(intake, request_id, lambda v: v["status"] == "in_service")
    assert [h["type"] for h in view["history"]].count("service_request.dispatched") == 1
    consumer = intake.app.state.runtime.consumer
    assert consumer.counts["duplicate"] >= 2


async def test_an_unreadable_event_goes_to_the_dlq_and_the_partition_keeps_flowing(intake, event_bus):
    request_id = await triaged_onsite(intake)
    job_id = str(uuid.uuid4())
    # Same key as the job's real events, so the poison record sits in front of them on one partition.
    await publish_raw(event_bus, DISPATCH, b"{not json", key=job_id.encode(), headers=[("ce_type", b"job.created")])
    bad_version = envelope_for(job_created(job_id, request_id), source="dispatch")
    from dataclasses import replace

    await publish(event_bus, replace(bad_version, dataschema="job.created/9"))
    await publish(event_bus, envelope_for(job_created(job_id, request_id), source="dispatch"))
    await wait_for(intake, request_id, lambda v: v["status"] == "dispatched")

    dead = await collect(event_bus, dlq_for(DISPATCH), subject_is(job_id), expected=2)
    reasons = [headers_of(r)["dlq_reason"] for r in dead]
    assert any(r.startswith("unreadable: missing CloudEvents headers") for r in reasons)
    assert any("unknown schema job.created/9" in r for r in reasons)
    assert dead[0].value == b"{not json"
    assert headers_of(dead[0])["dlq_topic"] == DISPATCH


async def test_an_event_for_a_request_intake_never_had_goes_to_the_dlq(intake, event_bus):
    ghost = str(uuid.uuid4())
    event = envelope_for(JobArrived(job_id=ghost, request_id=ghost, technician_id="T1"))
    await publish(event_bus, event)
    dead = await collect(event_bus, dlq_for(DISPATCH), subject_is(ghost), expected=1)
    assert "does not exist" in headers_of(dead[0])["dlq_reason"]
    assert json.loads(dead[0].value)["request_id"] == ghost
