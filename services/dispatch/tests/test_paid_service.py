"""dispatch and intake's quote gate, through the event bus (in process in the fast tier, with Kafka's records and offsets): a triage intake holds back (`dispatch_held`) makes no job;
`service_request.cleared_for_dispatch` does, its arrive SLA counted from when intake says (the customer's
acceptance of a quote; the receipt when warranty's verdict merely came late)."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.dispatch.tests.conftest import cancelled_event, request_events
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.intake import ClearedBy, ServiceRequestClearedForDispatch, ServiceRequestTriaged
from shared.contracts.topics import DISPATCH
from shared.eventstore.tables import processed_events
from shared.testing.app import eventually, settled
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def held_request(received_at: datetime, triaged_at: datetime, priority: Priority = Priority.P3):
    """`received` and a `triaged` that holds the job back, as intake publishes them for paid service."""
    received, triaged = request_events(received_at=received_at, triaged_at=triaged_at, priority=priority)
    held = ServiceRequestTriaged(
        request_id=received.subject, mode=ServiceMode.onsite, priority=priority, note=None, dispatch_held=True
    )
    return received, replace(triaged, data=held.model_dump_json())


def cleared(request_id: str, at: datetime, by: ClearedBy, sla_from: datetime, sequence: int, correlation: str):
    data = ServiceRequestClearedForDispatch(
        request_id=request_id,
        mode=ServiceMode.onsite,
        priority=Priority.P3,
        arrive_sla_from=sla_from,
        cleared_by=by,
        quote_id="q-1" if by == ClearedBy.quote_accepted else None,
    )
    return envelope_for(data, source="intake", time=at, sequence=sequence, correlation_id=correlation)


async def test_a_held_triage_makes_no_job_and_the_accepted_quote_makes_it_with_the_arrive_sla_from_the_acceptance(
    staffed, event_bus
):
    received_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    triaged_at = received_at + timedelta(minutes=10)
    accepted_at = received_at + timedelta(days=2)  # the customer took two days to decide
    received, triaged = held_request(received_at, triaged_at)
    go = cleared(received.subject, accepted_at, ClearedBy.quote_accepted, accepted_at, 6, triaged.correlationid)
    await publish(event_bus, received, triaged, go)

    job = await staffed.job_of(received.subject)
    assert job["created_at"] == iso(accepted_at), "no job at the held triage: it came with the acceptance"
    assert job["arrive_due"] == iso(accepted_at + timedelta(minutes=4320)), "P3: 72 h from the acceptance"
    assert job["accept_due"] == iso(accepted_at + timedelta(minutes=240))
    assert job["status"] == "assigned"

    await settled(staffed.app)
    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=2)
    created = headers_of(records[0])
    assert created["ce_type"] == "job.created" and created["ce_causationid"] == go.id


async def test_a_triage_held_only_until_warrantys_late_verdict_keeps_the_arrive_sla_from_the_receipt(
    staffed, event_bus
):
    received_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    received, triaged = held_request(received_at, received_at + timedelta(minutes=1))
    verdict_at = received_at + timedelta(minutes=2)
    go = cleared(received.subject, verdict_at, ClearedBy.coverage, received_at, 4, triaged.correlationid)
    await publish(event_bus, received, triaged, go, replace(go, id=str(uuid.uuid4())))

    job = await staffed.job_of(received.subject)
    assert job["created_at"] == iso(verdict_at)
    assert job["arrive_due"] == iso(received_at + timedelta(minutes=4320))
    await settled(staffed.app)
    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=2)
    assert [headers_of(r)["ce_type"] for r in records] == ["job.created", "job.assigned"], "one job, once"


async def test_a_held_request_cancelled_before_its_quote_is_accepted_never_gets_a_job(staffed, event_bus):
    received_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    received, triaged = held_request(received_at, received_at + timedelta(minutes=5))
    cancel = cancelled_event(received.subject, received_at + timedelta(hours=1), sequence=4)
    # Cannot follow a cancellation in intake (cancelled is final); dispatch stays safe if it did.
    late = cleared(received.subject, received_at + timedelta(hours=2), ClearedBy.quote_accepted, received_at, 5, "c")
    await publish(event_bus, received, triaged, cancel, late)

    await eventually(lambda: processed(staffed, late.id), until=bool)
    assert (await staffed.get_json(f"/v1/jobs?request_id={received.subject}"))["items"] == []


async def processed(dispatch, event_id: str) -> bool:
    async with dispatch.app.state.runtime.db.read() as conn:
        found = await conn.execute(select(processed_events.c.event_id).where(processed_events.c.event_id == event_id))
        return found.first() is not None
