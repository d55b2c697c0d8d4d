"""The complaint aggregate on its own, on fixed instants: no database, no Kafka, no web, no clock."""

from datetime import UTC, datetime, timedelta

import pytest

from services.complaints.domain import Complaint, Status, revisit_complaint_id
from services.complaints.sla import ComplaintSla
from shared.calendar import WorkingCalendar, parse_holidays
from shared.contracts.complaints import ComplaintCategory, ComplaintSeverity, ComplaintSource
from shared.domain import InvalidTransition, TimeRules

UTC = UTC
MONDAY_9 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
SLA = ComplaintSla(calendar=WorkingCalendar(holidays=parse_holidays("2026-12-25,2026-12-26")))


def at(hours: float, start: datetime = MONDAY_9) -> datetime:
    return start + timedelta(hours=hours)


def opened(severity=ComplaintSeverity.general, start=MONDAY_9) -> Complaint:
    return Complaint.open(
        "c1",
        request_id="r1",
        job_id="j1",
        dealer_id="D1",
        category=ComplaintCategory.delay,
        severity=severity,
        source=ComplaintSource.hotline,
        details="nobody came",
        at=start,
        sla=SLA,
    )


def types(complaint: Complaint) -> list[str]:
    return [p.data.event_type for p in complaint.take_pending()]


def fire_all_due(complaint: Complaint, now: datetime) -> None:
    """What the live timer does at `now`: every pending deadline that is due passes (once each)."""
    for kind, due in sorted(complaint.pending_deadlines().items(), key=lambda item: item[1]):
        if due <= now:
            complaint.deadline_passed(kind)


def test_a_general_complaint_is_due_acknowledged_in_1_hour_and_resolved_in_8():
    complaint = opened()
    assert (complaint.status, complaint.level) == (Status.open, 1)
    assert complaint.ack_due == at(1) and complaint.resolve_due == at(8)
    assert complaint.pending_deadlines() == {"acknowledge.1": at(1), "resolve.1.0": at(8)}
    assert complaint.next_due == at(1)


def test_a_serious_complaint_is_due_in_5_working_days_skipping_holidays():
    wednesday = datetime(2026, 12, 23, 10, 0, tzinfo=UTC)
    complaint = opened(ComplaintSeverity.serious, start=wednesday)
    assert complaint.resolve_due == datetime(2026, 12, 31, 10, 0, tzinfo=UTC)
    saturday = datetime(2026, 5, 9, 14, 0, tzinfo=UTC)
    assert opened(ComplaintSeverity.serious, start=saturday).resolve_due == datetime(2026, 5, 16, 0, 0, tzinfo=UTC)


def test_the_life_of_a_complaint_from_open_to_closed():
    complaint = opened()
    complaint.acknowledge("on it", at(0.5))
    complaint.escalate("customer is a key account", at(1))
    complaint.resolve("refunded the call-out fee", at(3))
    complaint.close(True, at(4))
    assert (complaint.status, complaint.level, complaint.customer_confirmed) == (Status.closed, 2, True)
    assert complaint.acknowledged_in_time and complaint.resolved_in_time
    assert complaint.pending_deadlines() == {}
    assert types(complaint) == [
        "complaint.opened",
        "complaint.acknowledged",
        "complaint.escalated",
        "complaint.resolved",
        "complaint.closed",
    ]


def test_resolving_an_unacknowledged_complaint_acknowledges_it_at_the_same_moment():
    complaint = opened()
    complaint.take_pending()
    complaint.resolve("explained the invoice", at(0.25))
    assert types(complaint) == ["complaint.acknowledged", "complaint.resolved"]
    assert complaint.acknowledged_at == complaint.resolved_at == at(0.25)


@pytest.mark.parametrize(
    "steps, command, allowed_when",
    [
        ([], lambda c: c.close(True, at(1)), "no resolution yet"),
        (["ack"], lambda c: c.close(False, at(1)), "no resolution yet"),
        (["resolve", "close"], lambda c: c.close(True, at(2)), "allowed when: resolved"),
        (["ack"], lambda c: c.acknowledge(None, at(1)), "allowed when: open"),
        ([], lambda c: c.wait_on_customer("photos", at(1), SLA), "allowed when: acknowledged"),
        (["ack"], lambda c: c.record_customer_response(None, at(1), SLA), "allowed when: waiting_on_customer"),
        (["resolve"], lambda c: c.escalate("x", at(1)), "allowed when: open, acknowledged, waiting_on_customer"),
        (["resolve"], lambda c: c.resolve("again", at(1)), "allowed when"),
        (["ack"], lambda c: c.reopen("x", at(1), SLA), "allowed when: resolved, closed"),
    ],
)
def test_transitions_the_state_does_not_allow_are_refused_and_record_nothing(steps, command, allowed_when):
    complaint = opened()
    for step in steps:
        {
            "ack": lambda: complaint.acknowledge(None, at(0.1)),
            "resolve": lambda: complaint.resolve("r", at(0.2)),
            "close": lambda: complaint.close(True, at(0.3)),
        }[step]()
    complaint.take_pending()
    with pytest.raises(InvalidTransition, match=allowed_when) as refused:
        command(complaint)
    assert refused.value.extra["current_status"] == str(complaint.status)
    assert complaint.take_pending() == []


def test_manual_escalation_stops_at_level_3():
    complaint = opened()
    complaint.escalate("a", at(0.1))
    complaint.escalate("b", at(0.2))
    with pytest.raises(InvalidTransition, match="already at level 3"):
        complaint.escalate("c", at(0.3))
    assert complaint.level == 3


def test_a_missed_acknowledgement_escalates_once_stamped_with_its_deadline():
    complaint = opened()
    complaint.take_pending()
    fire_all_due(complaint, at(2))
    complaint.deadline_passed("acknowledge.1")  # the timer again: exactly once all the same
    pending = complaint.take_pending()
    assert [(p.data.event_type, p.data.level, p.data.trigger, p.occurred_at) for p in pending] == [
        ("complaint.escalated", 2, "acknowledge_overdue", at(1))
    ]
    assert pending[0].data.due == at(1)


def test_each_missed_deadline_escalates_one_level_and_level_3_is_the_top():
    complaint = opened()
    complaint.escalate("key account", at(0.1))
    fire_all_due(complaint, at(9))
    escalations = [
        (p.data.level, p.data.trigger) for p in complaint.take_pending() if p.data.event_type == "complaint.escalated"
    ]
    assert escalations == [(2, "manual"), (3, "acknowledge_overdue")], "the missed resolution had nowhere to go"
    assert complaint.level == 3


def test_a_deadline_already_met_moved_or_from_an_earlier_round_does_nothing():
    complaint = opened()
    complaint.acknowledge(None, at(0.5))
    complaint.take_pending()
    complaint.deadline_passed("acknowledge.1")
    complaint.deadline_passed("resolve.1.7")
    complaint.resolve("done", at(1))
    complaint.reopen("still broken", at(2), SLA)
    complaint.take_pending()
    complaint.deadline_passed("resolve.1.0")
    assert complaint.take_pending() == []
    assert complaint.pending_deadlines() == {"acknowledge.2": at(3), "resolve.2.0": at(10)}


def test_a_late_synced_acknowledgement_within_the_deadline_withdraws_the_timers_escalation():
    complaint = opened()
    fire_all_due(complaint, at(1.5))
    assert complaint.level == 2
    # The hotline types in, at 1.5 h, that the complaint was taken on at 0.75 h: allowed, since the timer's
    # escalation is not a step of the case.
    step_time = TimeRules().resolve(at(0.75), at(1.5), complaint.last_step_at)
    complaint.take_pending()
    complaint.acknowledge("called back", step_time)
    pending = complaint.take_pending()
    assert [p.data.event_type for p in pending] == ["complaint.acknowledged", "complaint.escalation_withdrawn"]
    withdrawn = pending[1]
    assert (withdrawn.data.level, withdrawn.data.deadline, withdrawn.data.due, withdrawn.occurred_at) == (
        1,
        "acknowledge",
        at(1),
        at(1),
    )
    assert complaint.level == 1 and complaint.acknowledged_in_time


def test_a_late_acknowledgement_after_the_deadline_keeps_the_escalation():
    complaint = opened()
    fire_all_due(complaint, at(1.5))
    complaint.take_pending()
    complaint.acknowledge(None, at(1.25))
    assert types(complaint) == ["complaint.acknowledged"]
    assert complaint.level == 2 and complaint.acknowledged_in_time is False


def test_a_late_synced_resolution_within_the_deadlines_withdraws_both_escalations():
    complaint = opened()
    fire_all_due(complaint, at(9))
    assert complaint.level == 3
    complaint.take_pending()
    complaint.resolve("fixed on the phone", at(0.5))
    assert types(complaint) == [
        "complaint.acknowledged",
        "complaint.resolved",
        "complaint.escalation_withdrawn",
        "complaint.escalation_withdrawn",
    ]
    assert complaint.level == 1


def test_waiting_on_the_customer_stops_the_resolution_clock_and_moves_its_deadline():
    complaint = opened()
    complaint.acknowledge(None, at(0.5))
    complaint.wait_on_customer("needs photos of the damage", at(2), SLA)
    assert complaint.status == Status.waiting_on_customer and complaint.resolve_due is None
    assert complaint.pending_deadlines() == {} and complaint.waiting_since == at(2)
    complaint.record_customer_response("photos sent", at(5), SLA)
    assert complaint.resolve_due == at(11), "8 h plus the 3 h the clock stood still"
    complaint.wait_on_customer("asked for the invoice", at(6), SLA)
    complaint.record_customer_response(None, at(7), SLA)
    assert complaint.resolve_due == at(12)
    assert complaint.pending_deadlines() == {"resolve.1.2": at(12)}, "each response arms it under a fresh name"


def test_a_serious_complaints_wait_counts_only_working_time():
    friday_10 = datetime(2026, 5, 8, 10, 0, tzinfo=UTC)
    complaint = opened(ComplaintSeverity.serious, start=friday_10)
    complaint.acknowledge(None, at(0.5, friday_10))
    complaint.wait_on_customer("unit is at the customer's barn", at(6, friday_10), SLA)
    complaint.record_customer_response(None, datetime(2026, 5, 11, 10, 0, tzinfo=UTC), SLA)
    assert complaint.resolve_due == datetime(2026, 5, 18, 4, 0, tzinfo=UTC)


def test_a_wait_that_begins_after_the_deadline_does_not_move_it():
    complaint = opened()
    complaint.acknowledge(None, at(0.5))
    fire_all_due(complaint, at(9))
    complaint.take_pending()
    complaint.wait_on_customer("too late to pause", at(9), SLA)
    assert complaint.resolve_due == at(8) and types(complaint) == ["complaint.waiting_on_customer"]
    assert complaint.level == 2


def test_a_wait_after_a_missed_deadline_does_not_escalate_the_same_miss_again_when_the_customer_responds():
    complaint = opened()
    complaint.acknowledge(None, at(0.5))
    fire_all_due(complaint, at(9))
    complaint.wait_on_customer("too late to pause", at(9), SLA)
    complaint.record_customer_response(None, at(10), SLA)
    assert complaint.pending_deadlines() == {"resolve.1.1": at(8)}, "re-armed, and due at once"
    complaint.take_pending()
    fire_all_due(complaint, at(10))
    assert complaint.take_pending() == [] and complaint.level == 2


def test_a_late_synced_wait_withdraws_the_resolution_escalation_and_the_clock_runs_out_later():
    complaint = opened()
    complaint.acknowledge(None, at(0.5))
    fire_all_due(complaint, at(8.5))
    assert complaint.level == 2
    complaint.take_pending()
    complaint.wait_on_customer("customer asked us to wait", at(6), SLA)
    assert types(complaint) == ["complaint.waiting_on_customer", "complaint.escalation_withdrawn"]
    assert complaint.level == 1
    complaint.record_customer_response(None, at(7), SLA)
    assert complaint.pending_deadlines() == {"resolve.1.1": at(9)}, "a fresh deadline: the old one has fired"
    fire_all_due(complaint, at(10))
    escalated = complaint.take_pending()[-1]
    assert (escalated.data.event_type, escalated.data.level, escalated.occurred_at) == ("complaint.escalated", 2, at(9))


def test_reopening_a_resolved_complaint_keeps_its_level_and_starts_both_clocks_again():
    complaint = opened()
    complaint.resolve("replaced the seal", at(1))
    complaint.reopen("still leaking", at(3), SLA)
    assert (complaint.status, complaint.level, complaint.reopen_count, complaint.appeal_count) == (Status.open, 1, 1, 0)
    assert (complaint.ack_due, complaint.resolve_due, complaint.resolution) == (at(4), at(11), None)


def test_an_appeal_after_closing_reopens_at_the_next_level_and_level_3_stays_3():
    complaint = opened()
    for round_start in (1, 10, 20):
        complaint.resolve("answer", at(round_start))
        complaint.close(False, at(round_start + 1))
        complaint.reopen("the customer appeals", at(round_start + 2), SLA)
    assert (complaint.level, complaint.appeal_count, complaint.round) == (3, 3, 4)
    assert complaint.pending_deadlines() == {"acknowledge.4": at(23), "resolve.4.0": at(30)}


def test_a_low_revisit_opens_one_general_complaint_whose_id_is_derived_from_the_job():
    revisit_time = datetime(2026, 5, 4, 17, 30, tzinfo=UTC)
    complaint = Complaint.open_from_revisit(
        job_id="j9",
        request_id="r9",
        dealer_id="D3",
        satisfaction=2,
        channel="phone",
        comment="technician was rude",
        at=revisit_time,
        sla=SLA,
    )
    assert complaint.id == revisit_complaint_id("j9") != revisit_complaint_id("j8")
    assert (complaint.source, complaint.severity, complaint.category) == ("revisit", "general", "other")
    assert complaint.opened_at == revisit_time and complaint.ack_due == revisit_time + timedelta(hours=1)
    assert complaint.details == "Satisfaction 2/5 at the follow-up (phone): technician was rude"
    assert (complaint.request_id, complaint.job_id, complaint.dealer_id) == ("r9", "j9", "D3")
    assert complaint.satisfaction == 2


def test_folding_the_recorded_events_gives_the_same_complaint():
    complaint = opened()
    complaint.acknowledge(None, at(0.5))
    complaint.wait_on_customer("w", at(1), SLA)
    complaint.record_customer_response(None, at(2), SLA)
    fire_all_due(complaint, at(12))
    complaint.resolve("r", at(12))
    complaint.close(True, at(13))
    complaint.reopen("appeal", at(14), SLA)
    history = [(p.data, p.occurred_at) for p in complaint.take_pending()]
    folded = Complaint.rehydrate("c1", history)
    assert folded == complaint
