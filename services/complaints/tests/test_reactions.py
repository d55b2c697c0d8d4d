"""complaints follows intake and dispatch through the event bus (in process in the fast tier, with Kafka's records and offsets): events the test publishes as those services would."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from services.complaints.domain import revisit_complaint_id
from services.complaints.tests.conftest import iso, known_case, revisit_done
from shared.contracts.topics import COMPLAINTS
from shared.testing.app import settled
from shared.testing.contract_events import job_created
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is


async def test_a_low_revisit_opens_a_complaint_linked_to_the_job_stamped_with_the_revisits_time_and_chained_to_it(
    complaints, event_bus
):
    request_id, job_id = await known_case(complaints, event_bus, dealer_id="D3")
    revisit_time = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)
    cause = envelope_for(
        revisit_done(job_id, request_id, 2, "the technician left a mess"), source="dispatch", time=revisit_time
    )
    await publish(event_bus, cause)

    complaint_id = revisit_complaint_id(job_id)
    view = await complaints.until(complaint_id, lambda v: v["status"] == "open")
    assert (view["source"], view["severity"], view["satisfaction"]) == ("revisit", "general", 2)
    assert (view["request_id"], view["job_id"], view["dealer_id"]) == (request_id, job_id, "D3")
    assert view["opened_at"] == iso(revisit_time)
    assert view["ack_due"] == iso(revisit_time + timedelta(hours=1))
    assert "the technician left a mess" in view["description"]

    opened = (await collect(event_bus, COMPLAINTS, subject_is(complaint_id), expected=1))[0]
    headers = headers_of(opened)
    assert headers["ce_type"] == "complaint.opened" and headers["ce_time"] == iso(revisit_time)
    assert headers["ce_causationid"] == cause.id and headers["ce_correlationid"] == cause.correlationid
    assert json.loads(opened.value)["source"] == "revisit"


async def test_the_same_revisit_arriving_again_even_as_another_event_opens_one_complaint(complaints, event_bus):
    request_id, _ = await known_case(complaints, event_bus, dealer_id="D5", with_job=False)
    job_id = f"job-{uuid.uuid4()}"
    revisit = envelope_for(revisit_done(job_id, request_id, 1), source="dispatch")
    resent = envelope_for(revisit_done(job_id, request_id, 1), source="dispatch")  # the same fact, another event id
    # A marker behind them on their partition (same key): once complaints knows the job, it has seen them all.
    marker = envelope_for(job_created(job_id, request_id, "D5"), source="dispatch")
    await publish(event_bus, revisit, revisit, resent, marker)
    await complaints.knows(job_id=job_id)

    complaint_id = revisit_complaint_id(job_id)
    assert await complaints.stored_types(complaint_id) == ["complaint.opened"]
    assert complaints.app.state.runtime.consumer.counts["duplicate"] >= 1
    listed = (await complaints.client.get(f"/v1/complaints?job_id={job_id}", headers=complaints.officer)).json()
    assert [c["id"] for c in listed["items"]] == [complaint_id]
    await settled(complaints.app)
    published = await collect(event_bus, COMPLAINTS, subject_is(complaint_id), expected=1)
    assert [headers_of(r)["ce_type"] for r in published] == ["complaint.opened"]


async def test_a_revisit_scored_3_or_more_opens_no_complaint(complaints, event_bus):
    request_id, _ = await known_case(complaints, event_bus, with_job=False)
    job_id = f"job-{uuid.uuid4()}"
    await publish(
        event_bus,
        envelope_for(revisit_done(job_id, request_id, 3), source="dispatch"),
        envelope_for(job_created(job_id, request_id, None), source="dispatch"),
    )  # the marker behind it
    await complaints.knows(job_id=job_id)
    assert await complaints.stored_types(revisit_complaint_id(job_id)) == []


async def test_a_revisit_of_a_job_complaints_never_saw_still_opens_its_complaint_with_the_requests_dealer(
    complaints, event_bus
):
    request_id, _ = await known_case(complaints, event_bus, dealer_id="D4", with_job=False)
    job_id = f"job-{uuid.uuid4()}"
    await publish(event_bus, envelope_for(revisit_done(job_id, request_id, 1), source="dispatch"))
    view = await complaints.until(revisit_complaint_id(job_id), lambda v: True)
    assert (view["request_id"], view["job_id"], view["dealer_id"]) == (request_id, job_id, "D4")
