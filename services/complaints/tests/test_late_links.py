"""A complaint may name a request or job complaints has not heard of yet (design.md, complaints): it is
accepted, linked when the event arrives, and flagged only when none arrives within the grace period."""

import uuid
from datetime import UTC, datetime

import pytest

from services.complaints.tests.conftest import Complaints, request_received, start
from shared.clock import FixedClock
from shared.contracts.topics import COMPLAINTS, DISPATCH, INTAKE
from shared.testing.app import all_published, running
from shared.testing.contract_events import job_created
from shared.testing.kafka import collect, envelope_for, group_at_end, headers_of, publish, subject_is


@pytest.fixture
def clock():
    return FixedClock(datetime.now(UTC))


@pytest.fixture
async def short_grace(tmp_path, event_bus, clock):
    """Complaints on a test clock, with a grace period shorter than the acknowledgement deadline (passed by
    moving the clock: nothing but the link is due then)."""
    group = await group_at_end(event_bus, [INTAKE, DISPATCH], "complaints-test")
    settings, app = start(
        tmp_path, event_bus, clock=clock, consumer_group=group, complaint_unknown_link_grace_seconds=600
    )
    async with running(app) as client:
        yield Complaints(client, settings, app)


def past_the_grace(service: Complaints, clock: FixedClock) -> None:
    clock.advance(seconds=service.settings.complaint_unknown_link_grace_seconds)


async def test_a_complaint_about_a_request_not_yet_known_is_accepted_and_linked_when_it_arrives(complaints, event_bus):
    request_id = str(uuid.uuid4())
    opened = await complaints.open(request_id=request_id)
    assert opened.status_code == 201, opened.text
    complaint = opened.json()
    assert (complaint["request_id"], complaint["dealer_id"], complaint["link"]) == (request_id, None, "awaited")

    await publish(event_bus, envelope_for(request_received(request_id, "D1"), source="intake"))
    linked = await complaints.until(complaint["id"], lambda v: v.get("link") == "linked")
    assert linked["dealer_id"] == "D1", "the dealer is the request's"
    assert await complaints.stored_types(complaint["id"]) == [
        "complaint.opened",
        "complaint.link_awaited",
        "complaint.linked",
    ]
    mine = await complaints.get(complaint["id"], headers=complaints.auth("dealer", dealer_id="D1"))
    assert mine.status_code == 200


async def test_a_job_not_yet_known_is_linked_with_its_request(complaints, event_bus):
    request_id, job_id = str(uuid.uuid4()), f"job-{uuid.uuid4()}"
    opened = (await complaints.open(job_id=job_id)).json()
    await publish(
        event_bus,
        envelope_for(request_received(request_id, "D3"), source="intake"),
        envelope_for(job_created(job_id, request_id, "D3"), source="dispatch"),
    )
    linked = await complaints.until(opened["id"], lambda v: v.get("link") == "linked")
    assert (linked["request_id"], linked["job_id"], linked["dealer_id"]) == (request_id, job_id, "D3")


async def test_an_id_that_never_arrives_is_flagged_after_the_grace_period_with_an_event(short_grace, clock, event_bus):
    opened = (await short_grace.open(request_id=f"never-{uuid.uuid4()}")).json()
    clock.advance(seconds=short_grace.settings.complaint_unknown_link_grace_seconds - 1)
    await all_published(short_grace.app)  # the timer looked at it a second before the grace ends
    assert (await short_grace.view(opened["id"]))["link"] == "awaited"
    clock.advance(seconds=1)
    flagged = await short_grace.until(opened["id"], lambda v: v.get("link") == "unresolved")
    assert flagged["status"] == "open", "the complaint itself goes on"
    records = await collect(event_bus, COMPLAINTS, subject_is(opened["id"]), expected=3)
    assert [headers_of(r)["ce_type"] for r in records] == [
        "complaint.opened",
        "complaint.link_awaited",
        "complaint.link_unresolved",
    ]
    assert headers_of(records[2])["ce_dataschema"] == "complaint.link_unresolved/1"


async def test_a_dealer_naming_another_dealers_request_learns_nothing_and_gets_no_link(short_grace, clock, event_bus):
    request_id = str(uuid.uuid4())
    await publish(event_bus, envelope_for(request_received(request_id, "D1"), source="intake"))
    await short_grace.knows(request_id=request_id)
    d2 = short_grace.auth("dealer", dealer_id="D2")
    foreign = await short_grace.open(request_id=request_id, channel="dealer", headers=d2)
    unknown = await short_grace.open(request_id=str(uuid.uuid4()), channel="dealer", headers=d2)
    assert foreign.status_code == unknown.status_code == 201, "the same answer as for an id nobody has"
    assert foreign.json()["link"] == unknown.json()["link"] == "awaited"
    past_the_grace(short_grace, clock)
    flagged = await short_grace.until(foreign.json()["id"], lambda v: v.get("link") == "unresolved")
    assert flagged["dealer_id"] == "D2"
    d1 = short_grace.auth("dealer", dealer_id="D1")
    assert (await short_grace.get(foreign.json()["id"], headers=d1)).status_code == 404
    assert (await short_grace.client.get(f"/v1/complaints?request_id={request_id}", headers=d1)).json()["items"] == []
