"""Who caused each step of a complaint (design.md, "Audit"): its history and complaints' CloudEvents name the
token's user (with the dealer of a dealer token) for a command and `system:complaints` for a complaint opened
by itself from a low revisit. The timer's escalation is `system:complaints` too (test_deadlines)."""

from datetime import UTC, datetime, timedelta

from services.complaints.domain import revisit_complaint_id
from services.complaints.tests.conftest import known_case, revisit_done
from shared.contracts.topics import COMPLAINTS
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is


async def test_a_dealers_complaint_and_the_officers_steps_name_who_took_them(complaints, event_bus):
    request_id, _ = await known_case(complaints, event_bus, dealer_id="D1", with_job=False)
    clerk = complaints.auth("dealer", dealer_id="D1", sub="clerk-7")
    opened = await complaints.open(headers=clerk, channel="dealer", request_id=request_id, dealer_id="D1")
    assert opened.status_code == 201, opened.text
    complaint_id = opened.json()["id"]
    officer = complaints.auth("complaints_officer", sub="officer-1")
    acknowledged = await complaints.act(complaint_id, "acknowledge", {}, headers=officer)
    assert acknowledged.status_code == 200, acknowledged.text

    expected = [("complaint.opened", "user:clerk-7;dealer=D1"), ("complaint.acknowledged", "user:officer-1")]
    assert [(h["type"], h["actor"]) for h in acknowledged.json()["history"]] == expected
    seen_by_dealer = (await complaints.get(complaint_id, headers=clerk)).json()
    assert [(h["type"], h["actor"]) for h in seen_by_dealer["history"]] == expected
    records = await collect(event_bus, COMPLAINTS, subject_is(complaint_id), expected=2)
    assert [(headers_of(r)["ce_type"], headers_of(r)["ce_actor"]) for r in records] == expected


async def test_a_complaint_opened_from_a_low_revisit_is_the_services_own_not_the_revisits_recorder(
    complaints, event_bus
):
    request_id, job_id = await known_case(complaints, event_bus, dealer_id="D3")
    revisit_time = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)
    await publish(
        event_bus,
        envelope_for(
            revisit_done(job_id, request_id, 1), source="dispatch", time=revisit_time, actor="user:clerk-9;dealer=D3"
        ),
    )
    complaint_id = revisit_complaint_id(job_id)
    view = await complaints.until(complaint_id, lambda v: v["status"] == "open")
    assert [(h["type"], h["actor"]) for h in view["history"]] == [("complaint.opened", "system:complaints")]
    opened = (await collect(event_bus, COMPLAINTS, subject_is(complaint_id), expected=1))[0]
    assert headers_of(opened)["ce_actor"] == "system:complaints"
