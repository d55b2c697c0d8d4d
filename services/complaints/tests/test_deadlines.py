"""Deadlines on the running service: the live timer escalates a missed deadline by itself, exactly once;
waiting on the customer holds it; a late-synced step withdraws the timer's escalation. Real database, real
Kafka; the service's own deadlines on a test clock moved by hand, and waits on what the timer does, not on time."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.complaints.tests.conftest import Complaints, iso, start
from shared.clock import FixedClock
from shared.contracts.topics import COMPLAINTS
from shared.testing.app import all_published, running
from shared.testing.kafka import collect, headers_of, subject_is


@pytest.fixture
def clock():
    return FixedClock(datetime.now(UTC))


@pytest.fixture
async def service(tmp_path, event_bus, clock):
    """Complaints with its own deadlines on the test clock."""
    settings, app = start(tmp_path, event_bus, clock=clock)
    async with running(app) as client:
        yield Complaints(client, settings, app)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_an_untouched_complaint_escalates_by_itself_once_per_missed_deadline_stamped_with_it(
    service, clock, event_bus
):
    created = (await service.open()).json()
    clock.advance_to(parse(created["ack_due"]))
    await service.until(created["id"], lambda v: v["level"] == 2)
    clock.advance_to(parse(created["resolve_due"]))
    view = await service.until(created["id"], lambda v: v["level"] == 3)
    escalations = [h["time"] for h in view["history"] if h["type"] == "complaint.escalated"]
    assert escalations == [created["ack_due"], created["resolve_due"]]

    clock.advance(days=30)  # long past both: a deadline fired twice would be published by now
    await all_published(service.app)
    records = await collect(event_bus, COMPLAINTS, subject_is(created["id"]), expected=3)
    headers = [headers_of(r) for r in records]
    assert [h["ce_type"] for h in headers] == ["complaint.opened", "complaint.escalated", "complaint.escalated"]
    data = [json.loads(r.value) for r in records[1:]]
    assert [(d["level"], d["trigger"], d["due"]) for d in data] == [
        (2, "acknowledge_overdue", created["ack_due"]),
        (3, "resolve_overdue", created["resolve_due"]),
    ]
    assert [h["ce_time"] for h in headers[1:]] == [created["ack_due"], created["resolve_due"]]
    for escalated in headers[1:]:
        assert escalated["ce_causationid"] == headers[0]["ce_id"], "chained to the event that set the deadline"
        assert escalated["ce_correlationid"] == headers[0]["ce_correlationid"]


async def test_an_acknowledged_complaint_escalates_only_when_its_resolution_is_late(service, clock):
    created = (await service.open()).json()
    complaint_id = created["id"]
    assert (await service.act(complaint_id, "acknowledge")).status_code == 200
    resolved_in_time = (await service.open()).json()["id"]
    await service.act(resolved_in_time, "resolve", {"resolution": "apologised"})
    clock.advance_to(parse(created["resolve_due"]))  # past both deadlines of both complaints
    view = await service.until(complaint_id, lambda v: v["level"] == 2)
    assert [h["type"] for h in view["history"]] == [
        "complaint.opened",
        "complaint.acknowledged",
        "complaint.escalated",
    ]
    assert view["next_due"] is not None and view["acknowledged_in_time"] is True
    await all_published(service.app)  # the timer has looked at both since their deadlines passed
    assert await service.stored_types(resolved_in_time) == [
        "complaint.opened",
        "complaint.acknowledged",
        "complaint.resolved",
    ], "its deadlines were cancelled"


async def test_waiting_on_the_customer_holds_the_timer_and_the_response_moves_the_deadline(service, clock):
    scheduler = service.app.state.runtime.scheduler
    created = (await service.open()).json()
    opened_at = parse(created["opened_at"])
    await service.act(created["id"], "acknowledge")
    clock.advance(hours=1)
    waiting = (await service.act(created["id"], "wait-on-customer", {"reason": "needs the serial plate"})).json()
    assert waiting["resolve_due"] is None and waiting["next_due"] is None
    clock.advance(hours=10)
    await scheduler.fire_due()  # a round of the timer, now, besides its own loop
    assert (await service.view(created["id"]))["level"] == 1, "the clock stands still while waiting"
    responded = (await service.act(created["id"], "customer-responded", {"note": "sent a photo"})).json()
    assert parse(responded["resolve_due"]) == opened_at + timedelta(hours=8 + 10)
    almost_due = parse(responded["resolve_due"]) - timedelta(seconds=1) - clock.now()
    clock.advance(microseconds=almost_due // timedelta(microseconds=1))
    await scheduler.fire_due()
    assert (await service.view(created["id"]))["level"] == 1
    clock.advance(seconds=1)
    view = await service.until(created["id"], lambda v: v["level"] == 2)
    assert view["history"][-1] == {
        "type": "complaint.escalated",
        "time": responded["resolve_due"],
        "actor": "system:complaints",  # the timer, not whoever set the deadline
    }


async def test_a_late_synced_acknowledgement_withdraws_the_live_timers_escalation(service, clock, event_bus):
    created = (await service.open()).json()
    clock.advance(hours=1, minutes=20)
    await service.until(created["id"], lambda v: v["level"] == 2)
    # The officer's call at 40 minutes is typed in only now: before the timer's escalation, after the opening.
    called_at = parse(created["opened_at"]) + timedelta(minutes=40)
    acknowledged = await service.act(created["id"], "acknowledge", {"occurred_at": iso(called_at)})
    assert acknowledged.status_code == 200, acknowledged.text
    view = acknowledged.json()
    assert (view["level"], view["acknowledged_in_time"]) == (1, True)
    assert [h["type"] for h in view["history"]][-2:] == ["complaint.acknowledged", "complaint.escalation_withdrawn"]

    records = await collect(event_bus, COMPLAINTS, subject_is(created["id"]), expected=4)
    withdrawn = json.loads(records[-1].value)
    assert (withdrawn["level"], withdrawn["deadline"], withdrawn["due"]) == (1, "acknowledge", created["ack_due"])
    assert headers_of(records[-1])["ce_time"] == created["ack_due"]
