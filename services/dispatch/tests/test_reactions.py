"""dispatch follows intake through the event bus (in process in the fast tier, with Kafka's records and offsets): a job for every triaged request (once), assigned by the contract's
rule, cancelled with its request; and what it publishes in return, chained to the cause."""

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.dispatch.domain import job_id_for
from services.dispatch.tests.conftest import BACKENDS, cancelled_event, request_events, triaged_request
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.topics import DISPATCH, INTAKE, dlq_for
from shared.scheduling import deadlines
from shared.testing.app import eventually, settled
from shared.testing.kafka import collect, headers_of, publish, subject_is


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_a_triaged_request_becomes_a_job_auto_assigned_and_published_chained_to_the_triage(staffed, event_bus):
    received_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    triaged_at = received_at + timedelta(minutes=10)
    received, triaged = request_events(
        dealer_id="D1", priority=Priority.P1, received_at=received_at, triaged_at=triaged_at
    )
    await publish(event_bus, received, triaged)
    job = await staffed.job_of(received.subject)
    assert job["id"] == job_id_for(received.subject)
    assert (job["status"], job["technician_id"], job["center_id"]) == ("assigned", "T1", "C1")
    assert job["created_at"] == iso(triaged_at), "a reaction is stamped with its cause's time"
    assert job["accept_due"] == iso(triaged_at + timedelta(minutes=30))
    assert job["arrive_due"] == iso(received_at + timedelta(minutes=240)), "arrive counts from the receipt"

    await settled(staffed.app)
    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=2)
    headers = [headers_of(r) for r in records]
    assert [h["ce_type"] for h in headers] == ["job.created", "job.assigned"]
    for h in headers:
        assert h["ce_time"] == iso(triaged_at) and h["ce_source"] == "dispatch"
        assert h["ce_causationid"] == triaged.id and h["ce_correlationid"] == triaged.correlationid
    assert json.loads(records[0].value) == {
        "job_id": job["id"],
        "request_id": received.subject,
        "mode": "onsite",
        "priority": "P1",
        "region": "north",
        "product_line": "tractor",
        "dealer_id": "D1",
        "accept_due": job["accept_due"],
        "arrive_due": job["arrive_due"],
    }
    assert json.loads(records[1].value) == {
        "job_id": job["id"],
        "request_id": received.subject,
        "center_id": "C1",
        "technician_id": "T1",
        "by": "auto",
        "accept_due": job["accept_due"],
        "previous_technician_id": None,
    }


@pytest.mark.parametrize("dispatch", BACKENDS, indirect=True)
async def test_auto_assignment_prefers_the_dealers_center_then_the_least_loaded_then_the_smallest_id(
    dispatch, event_bus
):
    await dispatch.center("C-plain", region="north")
    await dispatch.center("C-D1", region="north", kind="authorized_dealer", dealer_id="D1")
    await dispatch.center("C-far", region="south")
    for technician_id, center_id, skills, active in [
        ("T5", "C-plain", ["tractor"], True),
        ("T7", "C-plain", ["tractor"], True),
        ("T9", "C-D1", ["tractor"], True),
        ("T0", "C-far", ["tractor"], True),
        ("T1", "C-plain", ["washer"], True),
        ("T2", "C-plain", ["tractor"], False),
    ]:
        await dispatch.technician_in(technician_id, center_id, skills, active)
    own_dealer = await dispatch.job_of(await triaged_request(event_bus, dealer_id="D1"))
    assert own_dealer["technician_id"] == "T9", "the dealer's own center first"
    picks = [
        (await dispatch.job_of(await triaged_request(event_bus, dealer_id="D2")))["technician_id"] for _ in range(3)
    ]
    assert picks == ["T5", "T7", "T5"], "then the fewest open jobs, then the smallest id"


async def test_duplicate_triaged_events_make_exactly_one_job(staffed, event_bus):
    received, triaged = request_events()
    resent = replace(triaged, id=str(uuid.uuid4()))  # the same fact again, as another event
    await publish(event_bus, received, triaged, triaged, resent)
    job = await staffed.job_of(received.subject)
    # A marker behind the duplicates on the same partition: once it is applied, they have all been seen.
    await publish(event_bus, cancelled_event(received.subject))
    await eventually(lambda: staffed.get_json(f"/v1/jobs/{job['id']}"), until=lambda j: j["status"] == "cancelled")
    assert len((await staffed.get_json(f"/v1/jobs?request_id={received.subject}"))["items"]) == 1
    assert await staffed.stream_types(job["id"]) == ["job.created", "job.assigned", "job.cancelled"]
    await settled(staffed.app)
    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=3)
    assert [headers_of(r)["ce_type"] for r in records] == ["job.created", "job.assigned", "job.cancelled"]
    assert staffed.app.state.runtime.consumer.counts["duplicate"] >= 1


async def test_a_phone_triage_makes_no_job(dispatch, event_bus):
    phone = await triaged_request(event_bus, mode=ServiceMode.phone)
    onsite = await triaged_request(event_bus, mode=ServiceMode.carry_in)
    assert (await dispatch.job_of(onsite))["mode"] == "carry_in"
    assert (await dispatch.get_json(f"/v1/jobs?request_id={phone}"))["items"] == []


async def test_a_cancelled_request_cancels_its_open_job_and_stops_its_timers(staffed, event_bus):
    request_id = await triaged_request(event_bus)
    job = await staffed.job_of(request_id)
    await staffed.step(job["id"], "accept", staffed.technician("T1"))
    cancelled_at = datetime.now(UTC).replace(microsecond=0)
    await publish(event_bus, cancelled_event(request_id, cancelled_at))
    view = await eventually(
        lambda: staffed.get_json(f"/v1/jobs/{job['id']}"), until=lambda j: j["status"] == "cancelled"
    )
    assert view["cancel_reason"] == "customer fixed it" and view["history"][-1]["time"] == iso(cancelled_at)
    async with staffed.app.state.runtime.db.read() as conn:
        states = dict(
            (
                await conn.execute(
                    select(deadlines.c.kind, deadlines.c.state).where(deadlines.c.stream_id == job["id"])
                )
            ).all()
        )
    assert states == {"accept": "cancelled", "arrive": "cancelled"}
    assert (await staffed.get_json("/v1/technicians/T1/queue"))["items"] == []
    refused = await staffed.step(job["id"], "arrive", staffed.technician("T1"))
    assert refused.status_code == 409


async def test_a_request_cancelled_before_triage_gets_no_job(dispatch, event_bus):
    received, triaged = request_events()
    await publish(event_bus, received, cancelled_event(received.subject, sequence=2))
    marker = await triaged_request(event_bus)
    await dispatch.job_of(marker)
    assert (await dispatch.get_json(f"/v1/jobs?request_id={received.subject}"))["items"] == []


async def test_a_triage_for_a_request_dispatch_never_saw_received_goes_to_the_dlq(dispatch, event_bus):
    _, orphan = request_events()
    await publish(event_bus, orphan)
    dead = await collect(event_bus, dlq_for(INTAKE), subject_is(orphan.subject), expected=1)
    assert "never reached dispatch" in headers_of(dead[0])["dlq_reason"]
    assert await dispatch.stream_types(job_id_for(orphan.subject)) == []
