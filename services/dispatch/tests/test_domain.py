"""Jobs, their SLA, the assignment rule and the workforce on their own: no database, no Kafka, no web."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.dispatch.assignment import Candidate, choose_technician
from services.dispatch.domain import JOB_ID_NAMESPACE, Assignee, Job, JobStatus, RequestFacts, job_id_for
from services.dispatch.sla import SlaPolicy
from services.dispatch.workforce import ServiceCenter, Technician
from shared.contracts.dispatch import AssignedBy, CenterKind, RevisitChannel, SlaKind, VisitFailureReason
from shared.contracts.enums import Priority, ServiceMode
from shared.domain import Forbidden, InvalidTransition, RuleViolation
from shared.testing.properties import examples

RECEIVED = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
SLA = SlaPolicy()
T1 = Assignee("T1", "C1", active=True, skills=frozenset({"tractor"}))
T2 = Assignee("T2", "C2", active=True, skills=frozenset({"tractor", "washer"}))


def at(minutes: float) -> datetime:
    return RECEIVED + timedelta(minutes=minutes)


def new_job(priority=Priority.P1, assignee=T1, triaged_at=10) -> Job:
    facts = RequestFacts("r1", "D1", "north", "tractor", RECEIVED)
    return Job.create(facts, ServiceMode.onsite, priority, SLA, at(triaged_at), assignee)


def types(job: Job) -> list[str]:
    return [p.data.event_type for p in job.take_pending()]


def test_a_job_id_derives_from_its_request_so_a_repeated_triage_names_the_same_job():
    assert job_id_for("r1") == job_id_for("r1") != job_id_for("r2")
    assert new_job().id == job_id_for("r1")


@given(st.text(max_size=80))
@settings(max_examples=examples(300))
def test_a_job_id_is_the_uuid5_of_its_request_in_the_job_namespace(request_id):
    # Ids stored before the spelled-out computation must keep naming the same streams.
    assert job_id_for(request_id) == str(uuid.uuid5(JOB_ID_NAMESPACE, request_id))


def test_a_triaged_request_becomes_a_job_assigned_at_the_triage_time_with_both_deadlines():
    job = new_job(Priority.P1, T1, triaged_at=10)
    assert types(job) == ["job.created", "job.assigned"]
    assert job.status == JobStatus.assigned and job.technician_id == "T1"
    assert job.accept_due == at(10 + 30), "accept: 30 minutes from the first assignment for P1"
    assert job.arrive_due == at(240), "arrive: 240 minutes from the request's receipt for P1"
    assert job.history == [("job.created", at(10)), ("job.assigned", at(10))]


@pytest.mark.parametrize(
    "priority, accept, arrive", [(Priority.P1, 30, 240), (Priority.P2, 120, 1440), (Priority.P3, 240, 4320)]
)
def test_the_default_sla_follows_the_contract_per_priority(priority, accept, arrive):
    job = new_job(priority, T1, triaged_at=0)
    assert (job.accept_due, job.arrive_due) == (at(accept), at(arrive))


def test_a_job_without_a_candidate_waits_unassigned_and_its_accept_clock_starts_at_the_first_assignment():
    job = new_job(Priority.P2, None)
    assert job.status == JobStatus.unassigned and job.accept_due is None
    assert job.pending_deadlines() == {SlaKind.accept: None, SlaKind.arrive: at(1440)}
    job.assign(T1, AssignedBy.manual, SLA, at(60))
    assert job.accept_due == at(60 + 120)
    job.assign(T2, AssignedBy.manual, SLA, at(90))
    assert job.accept_due == at(60 + 120), "a re-assignment does not restart the clock"
    assert job.technician_id == "T2" and job.center_id == "C2"
    assigned = job.take_pending()[-1].data
    assert assigned.previous_technician_id == "T1" and assigned.accept_due == at(180)


def test_assigning_a_technician_who_is_inactive_or_lacks_the_skill_is_refused():
    job = new_job(assignee=None)
    with pytest.raises(RuleViolation, match="inactive") as inactive:
        job.assign(Assignee("T9", "C1", active=False, skills=frozenset({"tractor"})), AssignedBy.manual, SLA, at(20))
    assert inactive.value.field == "technician_id"
    with pytest.raises(RuleViolation, match="no skill for product line 'tractor'"):
        job.assign(Assignee("T9", "C1", active=True, skills=frozenset({"washer"})), AssignedBy.manual, SLA, at(20))
    assert job.status == JobStatus.unassigned and job.version == 1


def test_re_assignment_is_allowed_until_the_job_is_accepted_and_never_once_completed():
    job = new_job()
    job.accept("T1", at(20))
    with pytest.raises(InvalidTransition, match="until the job is accepted"):
        job.assign(T2, AssignedBy.manual, SLA, at(21))
    job.arrive("T1", at(60))
    job.complete("T1", True, "new pump", at(90))
    with pytest.raises(InvalidTransition, match="completed") as error:
        job.assign(T2, AssignedBy.manual, SLA, at(91))
    assert error.value.extra["current_status"] == "completed"


def test_assigning_the_technician_who_already_has_the_job_changes_nothing():
    job = new_job()
    version = job.version
    job.assign(T1, AssignedBy.manual, SLA, at(15))
    assert job.version == version


def test_a_job_goes_through_visits_until_fixed_and_then_takes_one_revisit():
    job = new_job()
    job.accept("T1", at(20))
    job.arrive("T1", at(100))
    job.complete("T1", False, "part on order", at(130))
    assert job.status == JobStatus.repeat_visit_needed
    job.arrive("T1", at(2000))
    job.complete("T1", True, "replaced the pump", at(2100))
    assert job.status == JobStatus.completed and job.completed_at == at(2100)
    assert job.arrived_at == at(100), "the first arrival counts"
    assert [(v.fixed, v.resolution) for v in job.visits] == [(False, "part on order"), (True, "replaced the pump")]
    job.record_revisit(5, 9, RevisitChannel.phone, "quick and friendly", at(3000))
    assert job.status == JobStatus.revisited and job.revisit.satisfaction == 5
    with pytest.raises(InvalidTransition):
        job.record_revisit(4, None, RevisitChannel.sms, None, at(3100))


def test_a_visit_that_did_not_fix_the_unit_says_why_and_unspecified_when_not_told():
    job = new_job()
    job.accept("T1", at(20))
    job.arrive("T1", at(100))
    job.complete("T1", False, "nobody home", at(110), VisitFailureReason.customer_absent)
    job.arrive("T1", at(2000))
    job.complete("T1", False, None, at(2010))
    job.arrive("T1", at(3000))
    job.complete("T1", True, "replaced the pump", at(3100))
    history = [(p.data, p.occurred_at) for p in job.take_pending()]
    completions = [data for data, _ in history if data.event_type == "job.completed"]
    assert [c.reason for c in completions] == [VisitFailureReason.customer_absent, VisitFailureReason.unspecified, None]
    assert [v.reason for v in job.visits] == [VisitFailureReason.customer_absent, VisitFailureReason.unspecified, None]
    assert Job.rehydrate(job.id, history) == job


def test_a_reason_for_a_visit_that_fixed_the_unit_is_refused_naming_the_field():
    job = new_job()
    job.accept("T1", at(20))
    job.arrive("T1", at(100))
    version = job.version
    with pytest.raises(RuleViolation, match="fixed=false") as error:
        job.complete("T1", True, "done", at(110), VisitFailureReason.parts_unavailable)
    assert error.value.field == "reason" and job.version == version and job.status == JobStatus.in_service


@pytest.mark.parametrize(
    "steps, command, hint",
    [
        ([], lambda j: j.arrive("T1", at(30)), "accept it first"),
        (["accept"], lambda j: j.complete("T1", True, None, at(30)), "arrive first"),
        (
            ["accept", "arrive", "unfixed"],
            lambda j: j.record_revisit(3, None, RevisitChannel.phone, None, at(99)),
            "not fixed yet",
        ),
    ],
)
def test_steps_out_of_order_are_refused_and_name_what_comes_first(steps, command, hint):
    job = new_job()
    actions = {
        "accept": lambda: job.accept("T1", at(20)),
        "arrive": lambda: job.arrive("T1", at(40)),
        "unfixed": lambda: job.complete("T1", False, None, at(50)),
    }
    for step in steps:
        actions[step]()
    version = job.version
    with pytest.raises(InvalidTransition, match=hint):
        command(job)
    assert job.version == version


@pytest.mark.parametrize(
    "satisfaction, nps, field", [(0, None, "satisfaction"), (6, 5, "satisfaction"), (3, 11, "nps"), (3, -1, "nps")]
)
def test_a_revisit_score_out_of_range_is_refused(satisfaction, nps, field):
    job = new_job()
    with pytest.raises(RuleViolation) as error:
        job.record_revisit(satisfaction, nps, RevisitChannel.phone, None, at(10))
    assert error.value.field == field


def test_only_the_assigned_technician_acts_on_a_job_and_a_dispatcher_may_on_their_behalf():
    job = new_job()
    with pytest.raises(Forbidden, match="not assigned to technician T2"):
        job.accept("T2", at(20))
    job.accept(None, at(20))
    assert job.take_pending()[-1].data.technician_id == "T1"


def test_a_step_recorded_late_emits_the_breach_stamped_with_its_deadline_once():
    job = new_job(Priority.P1, T1, triaged_at=10)  # accept due at 40, arrive due at 240
    job.take_pending()
    job.accept("T1", at(41))
    pending = job.take_pending()
    assert [(p.data.event_type, p.occurred_at) for p in pending] == [
        ("job.sla_breached", at(40)),
        ("job.accepted", at(41)),
    ]
    assert pending[0].data.kind == SlaKind.accept and pending[0].data.due == at(40)
    job.arrive("T1", at(300))
    job.complete("T1", False, None, at(310))
    job.arrive("T1", at(400))
    assert types(job) == ["job.sla_breached", "job.arrived", "job.completed", "job.arrived"], (
        "a repeat visit is not a second breach"
    )
    assert job.is_breached(SlaKind.accept) and job.is_breached(SlaKind.arrive)


def test_a_step_exactly_on_its_deadline_is_in_time():
    job = new_job(Priority.P1, T1, triaged_at=10)
    job.accept("T1", at(40))
    job.arrive("T1", at(240))
    assert "job.sla_breached" not in types(job)


def test_the_live_timer_announces_a_breach_once_and_only_for_a_step_still_missing():
    job = new_job(Priority.P1, T1, triaged_at=10)
    job.take_pending()
    job.note_deadline_passed(SlaKind.accept, at(39))
    assert job.take_pending() == [], "not yet due"
    job.note_deadline_passed(SlaKind.accept, at(40))
    job.note_deadline_passed(SlaKind.accept, at(45))
    breaches = job.take_pending()
    assert [(p.data.event_type, p.occurred_at) for p in breaches] == [("job.sla_breached", at(40))]
    assert job.pending_deadlines() == {SlaKind.accept: None, SlaKind.arrive: at(240)}
    job.accept("T1", at(50))
    assert types(job) == ["job.accepted"], "the late step does not repeat the timer's breach"
    job.arrive("T1", at(200))
    job.note_deadline_passed(SlaKind.arrive, at(241))
    assert types(job) == ["job.arrived"], "a step done in time leaves nothing for the timer"


def test_a_late_synced_step_that_disproves_the_timer_withdraws_its_breach():
    job = new_job(Priority.P1, T1, triaged_at=10)
    job.note_deadline_passed(SlaKind.accept, at(40))
    job.take_pending()
    job.accept("T1", at(35))  # done offline before the deadline, synced after the timer fired
    pending = job.take_pending()
    assert [(p.data.event_type, p.occurred_at) for p in pending] == [
        ("job.accepted", at(35)),
        ("job.sla_breach_withdrawn", at(40)),
    ]
    assert not job.is_breached(SlaKind.accept)


def test_announcements_are_not_steps_so_a_late_sync_may_precede_them():
    job = new_job(Priority.P1, T1, triaged_at=10)
    job.note_deadline_passed(SlaKind.accept, at(40))
    assert job.last_step_at == at(10), "the breach (at 40) does not move the bound for the next step"


def test_a_cancelled_request_cancels_an_open_job_and_stops_its_timers():
    job = new_job()
    job.accept("T1", at(20))
    job.take_pending()
    job.note_request_cancelled("customer fixed it", at(25))
    job.note_request_cancelled("customer fixed it", at(25))
    assert types(job) == ["job.cancelled"]
    assert job.status == JobStatus.cancelled and not job.is_open
    assert job.pending_deadlines() == {SlaKind.accept: None, SlaKind.arrive: None}
    with pytest.raises(InvalidTransition):
        job.arrive("T1", at(30))


def test_a_job_completed_fixed_is_not_cancelled():
    job = new_job()
    job.accept("T1", at(20))
    job.arrive("T1", at(30))
    job.complete("T1", True, None, at(40))
    job.note_request_cancelled("too late", at(50))
    assert job.status == JobStatus.completed


def test_a_job_rebuilt_from_its_events_equals_the_one_that_made_them():
    job = new_job(Priority.P2)
    job.note_deadline_passed(SlaKind.accept, at(10 + 120))
    job.accept("T1", at(100))
    job.arrive("T1", at(200))
    job.complete("T1", True, "done", at(250))
    history = [(p.data, p.occurred_at) for p in job.take_pending()]
    assert Job.rehydrate(job.id, history) == job


def test_phone_triage_makes_no_job():
    with pytest.raises(RuleViolation):
        Job.create(
            RequestFacts("r1", None, "north", "tractor", RECEIVED), ServiceMode.phone, Priority.P3, SLA, at(1), None
        )


def test_auto_assignment_prefers_the_dealers_center_then_the_fewest_open_jobs_then_the_smallest_id():
    busy_own = Candidate("T9", "C-D1", "D1", open_jobs=7)
    idle_b = Candidate("T3", "C2", None, open_jobs=0)
    idle_a = Candidate("T20", "C3", "D2", open_jobs=0)
    assert choose_technician([idle_b, busy_own, idle_a], "D1") == busy_own
    assert choose_technician([idle_b, busy_own, idle_a], None) == idle_a, "'T20' < 'T3' as ids"
    assert (
        choose_technician([Candidate("T1", "C1", None, 2), Candidate("T2", "C1", None, 1)], "D5").technician_id == "T2"
    )
    assert choose_technician([], "D1") is None


def test_an_sla_policy_needs_every_priority():
    with pytest.raises(ValueError, match="P3"):
        SlaPolicy(accept_minutes={Priority.P1: 1, Priority.P2: 2})


def test_a_center_and_a_technician_of_the_same_name_live_in_different_streams():
    center = ServiceCenter.register("north-1", "North", "north", CenterKind.branch, None, at(0))
    technician = Technician.register("north-1", "north-1", "Ana", ["washer", "tractor", "tractor"], True, at(0))
    assert center.id != technician.id and center.center_id == technician.technician_id == "north-1"
    assert technician.skills == ("tractor", "washer")


def test_an_authorized_dealer_center_names_its_dealer():
    with pytest.raises(RuleViolation) as error:
        ServiceCenter.register("C9", "Dealer shop", "south", CenterKind.authorized_dealer, None, at(0))
    assert error.value.field == "dealer_id"


def test_updates_record_the_whole_new_record_and_only_when_something_changed():
    technician = Technician.register("T1", "C1", "Ana", ["tractor"], True, at(0))
    technician.take_pending()
    technician.update(at(1), active=True, skills=["tractor"])
    assert technician.take_pending() == []
    technician.update(at(2), active=False)
    [updated] = technician.take_pending()
    assert updated.data.model_dump() == {
        "technician_id": "T1",
        "center_id": "C1",
        "name": "Ana",
        "skills": ["tractor"],
        "active": False,
    }
