"""Folding a request's events into its facts: the same facts whatever order the events come in, duplicates
once, "first" by business time, breaches withdrawn by the source's later decision."""

from __future__ import annotations

import itertools
import random

from services.analytics.facts import DIRECT, fold_all, fold_request
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import event_at

MIN = 60_000_000
R, J = "req-1", "job-1"


def event(
    event_type: str,
    at_minutes: float,
    request_id: str | None = R,
    job_id: str | None = None,
    recorded: float | None = None,
    **data,
) -> AnalyticsEvent:
    """An event of request R unless another is named (`event_at`)."""
    return event_at(event_type, at_minutes, request_id, job_id, recorded, **data)


def received(at=0, dealer="D1", request_id=R):
    return event("service_request.received", at, request_id, dealer_id=dealer, region="north", product_line="baler")


def job(event_type, at, job_id=J, request_id=R, recorded=None, **data):
    return event(event_type, at, request_id, job_id, recorded, **data)


def history() -> list[AnalyticsEvent]:
    return [
        received(),
        event("service_request.escalated", 3),
        event("service_request.triaged", 10, mode="onsite", priority="P2"),
        job("job.created", 10, dealer_id="D1", region="north", product_line="baler"),
        job("job.assigned", 11, center_id="C1", technician_id="T1"),
        job("job.assigned", 20, center_id="C2", technician_id="T2"),  # re-assigned before acceptance
        job("job.arrived", 100, technician_id="T2"),
        job("job.completed", 130, technician_id="T2", fixed=False),
        job("job.arrived", 1500, technician_id="T2"),
        job("job.completed", 1560, technician_id="T2", fixed=True),
        job("job.sla_breached", 250, recorded=251, kind="accept"),
        job("revisit.done", 3000, satisfaction=4, nps=9),
        event("complaint.opened", 3100, None, J, complaint_id="K1"),
        event("complaint.opened", 3200, R, None, complaint_id="K2"),
    ]


def test_the_facts_of_a_request_follow_the_definitions():
    fact, revisits = fold_request(R, history())
    assert (fact.received_at, fact.triaged_at, fact.first_assigned_at, fact.first_arrived_at, fact.resolved_at) == (
        0,
        10 * MIN,
        11 * MIN,
        100 * MIN,
        1560 * MIN,
    )
    assert (fact.dealer_key, fact.region, fact.product_line) == ("D1", "north", "baler")
    assert (fact.center_id, fact.technician_id) == ("C2", "T2")  # assigned when the job was first completed
    assert (fact.escalated, fact.phone_triaged, fact.cancelled_at) == (True, False, None)
    assert (fact.jobs_completed, fact.jobs_first_fixed, fact.jobs_sla_met, fact.complaints) == (1, 0, 0, 2)
    assert [(r.satisfaction, r.nps, r.technician_id, r.dealer_key) for r in revisits] == [(4, 9, "T2", "D1")]


def test_any_arrival_order_gives_the_same_facts():
    events = history()
    expected = fold_request(R, events)
    shuffler = random.Random(3)
    for _ in range(50):
        shuffler.shuffle(events)
        assert fold_request(R, events) == expected


def test_a_duplicate_event_counts_once():
    events = history()
    assert fold_request(R, events + events[-3:]) == fold_request(R, events)


def test_a_complaint_opened_twice_under_one_complaint_id_counts_once():
    twice = [event("complaint.opened", 5, R, None, complaint_id="K9") for _ in range(2)]
    assert fold_request(R, [received(), *twice])[0].complaints == 1


def test_a_breach_withdrawn_later_does_not_count_but_one_announced_again_after_the_withdrawal_does():
    base = [
        received(),
        job("job.assigned", 1, center_id="C", technician_id="T"),
        job("job.completed", 300, technician_id="T", fixed=True),
    ]
    breach = job("job.sla_breached", 240, recorded=240, kind="arrive")
    withdrawal = job("job.sla_breach_withdrawn", 300, recorded=300, kind="arrive")
    again = job("job.sla_breached", 240, recorded=400, kind="arrive")
    other_kind = job("job.sla_breach_withdrawn", 300, recorded=300, kind="accept")
    assert fold_request(R, base + [breach])[0].jobs_sla_met == 0
    for order in itertools.permutations([breach, withdrawal]):
        assert fold_request(R, base + list(order))[0].jobs_sla_met == 1
    assert fold_request(R, base + [breach, withdrawal, again])[0].jobs_sla_met == 0
    assert fold_request(R, base + [breach, other_kind])[0].jobs_sla_met == 0


def test_a_phone_triage_resolves_at_once_and_a_cancellation_is_kept():
    phone, _ = fold_request(R, [received(), event("service_request.triaged", 7, mode="phone", priority="P3")])
    assert (phone.phone_triaged, phone.resolved_at) == (True, 7 * MIN)
    gone, _ = fold_request(
        R, [received(), event("service_request.cancelled", 9), event("service_request.cancelled", 19)]
    )
    assert (gone.cancelled_at, gone.resolved_at) == (9 * MIN, None)


def test_a_request_without_a_dealer_is_direct_and_one_not_yet_received_takes_its_keys_from_the_job():
    assert fold_request(R, [received(dealer=None)])[0].dealer_key == DIRECT
    early, _ = fold_request(R, [job("job.created", 5, dealer_id="D7", region="south", product_line="oven")])
    assert (early.received_at, early.dealer_key, early.region) == (None, "D7", "south")


def test_no_completed_job_leaves_center_and_technician_unknown():
    fact, _ = fold_request(R, [received(), job("job.assigned", 1, center_id="C", technician_id="T")])
    assert (fact.center_id, fact.technician_id, fact.jobs_completed) == (None, None, 0)


def test_a_completion_without_a_known_assignment_keys_by_the_completing_technician():
    fact, _ = fold_request(R, [received(), job("job.completed", 50, technician_id="T5", fixed=True)])
    assert (fact.center_id, fact.technician_id) == (None, "T5")


def test_fold_all_links_a_complaint_to_the_request_of_the_job_it_names_and_leaves_unlinked_ones_out():
    other = "req-2"
    events = [
        received(),
        received(request_id=other, dealer="D2"),
        job("job.created", 1, job_id="J2", request_id=other, dealer_id="D2", region="n", product_line="x"),
        event("complaint.opened", 5, None, "J2", complaint_id="K1"),
        event("complaint.opened", 5, None, "J-unknown", complaint_id="K2"),
        event("complaint.opened", 5, None, None, complaint_id="K3"),
    ]
    facts = {f.request_id: f for f in fold_all(events)[0]}
    assert (facts[R].complaints, facts[other].complaints) == (0, 1)
    assert set(facts) == {R, other}


def test_fold_all_equals_folding_each_request_on_its_own():
    events = history() + [received(request_id="req-2", dealer="D2")]
    requests, revisits = fold_all(reversed(events))
    by_id = {f.request_id: f for f in requests}
    assert by_id[R] == fold_request(R, history())[0]
    assert len(revisits) == 1
