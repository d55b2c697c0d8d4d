"""Property: the fold carried from event to event (`fold.RequestFold`) and the versions carried from moment to
moment (`fold.fact_versions`) equal their definitions (`facts.fold_request_full` over the set of events, and
`facts.fact_versions`, a fresh fold at every recorded moment), whatever order the events come in — in order,
late, backdated, duplicated."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import facts, fold
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import request_history
from services.analytics.tests.test_facts import event, history, job, received
from shared.testing.properties import examples

SETTINGS = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def histories(draw) -> tuple[str, list[AnalyticsEvent]]:
    """One request's events (with the complaints naming only its jobs), some twice, in a random order."""
    events = draw(request_history(0))
    duplicates = draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
    return "R0", draw(st.permutations(events + duplicates))


@SETTINGS
@given(histories())
def test_the_fold_of_events_sorted_by_business_time_equals_the_fold_of_their_set(history_):
    request_id, events = history_
    assert fold.RequestFold.of(request_id, events).facts() == facts.fold_request_full(request_id, events)


@SETTINGS
@given(histories(), st.data())
def test_a_fold_carried_through_arrivals_that_refolds_when_one_comes_early_equals_the_fold_of_their_set(history_, data):
    request_id, events = history_
    state = fold.RequestFold(request_id)
    arrived: list[AnalyticsEvent] = []
    for e in events:  # one at a time, in the random arrival order
        arrived.append(e)
        if state.accepts([e]):
            state.add(e)
        else:
            state = fold.RequestFold.of(request_id, arrived)
        assert state.facts() == facts.fold_request_full(request_id, arrived)
        assert state.owns_something() == facts._owns_something(
            request_id, list({x.event_id: x for x in arrived}.values())
        )


@SETTINGS
@given(histories())
def test_versions_carried_from_moment_to_moment_equal_a_fresh_fold_at_every_moment(history_):
    request_id, events = history_
    assert fold.fact_versions(request_id, events) == facts.fact_versions(request_id, events)


@SETTINGS
@given(histories(), st.data())
def test_versions_resumed_from_the_events_already_folded_complete_the_versions_of_the_whole_history(history_, data):
    """What the live path does: the stored open versions, then the moments after the last one stored."""
    request_id, events = history_
    moments = sorted({e.recorded_at for e in events})
    if not moments:
        return
    cut = data.draw(st.sampled_from(moments))
    before = [e for e in events if e.recorded_at <= cut]
    trail = fold.VersionTrail(request_id, before)
    for moment, group in fold.by_moment(e for e in events if e.recorded_at > cut):
        trail.record(moment, group)
    stored = facts.fact_versions(request_id, before)
    expected = facts.fact_versions(request_id, events)
    for kind, key in enumerate(fold.FACT_KEYS):
        rows = [v for v in stored[kind] if v.valid_to != facts.FOREVER]  # closed rows stay as they are
        ended = {k: at for kind_, k, at in trail.ended if kind_ == kind}
        for v in stored[kind]:
            if v.valid_to == facts.FOREVER:
                at = ended.get(getattr(v.fact, key))
                rows.append(facts.Versioned(v.valid_from, at if at is not None else v.valid_to, v.fact))
        rows += trail.versions()[kind]
        assert sorted(rows, key=repr) == sorted(expected[kind], key=repr)


def test_an_event_earlier_in_business_order_than_one_folded_is_refused_by_the_carried_fold():
    state = fold.RequestFold("req-1")
    state.add(received(at=10))
    early = job("job.created", 5)
    assert not state.accepts([early])
    try:
        state.add(early)
    except ValueError:
        pass
    else:
        raise AssertionError("a backdated event was added to a fold past it")


def test_the_hand_written_history_folds_to_the_same_facts_carried_or_from_its_set():
    events = history()
    assert fold.RequestFold.of("req-1", events).facts() == facts.fold_request_full("req-1", events)
    late = [*events, event("service_request.triaged", 1, mode="phone", priority="P1", recorded=5000)]
    assert fold.fact_versions("req-1", late) == facts.fact_versions("req-1", late)


def test_a_wait_on_the_customer_that_ends_when_the_unit_is_fixed_counts_inside_the_repair_step():
    events = [
        received(),
        job("job.arrived", 50, technician_id="T1"),
        job("job.completed", 100, technician_id="T1", fixed=False, reason="customer_absent"),
        job("job.arrived", 200, technician_id="T1"),
        job("job.completed", 200, technician_id="T1", fixed=True),
    ]
    carried = fold.RequestFold.of("req-1", events).facts()
    assert carried == facts.fold_request_full("req-1", events)
    assert carried[0].repair_customer_micros == 100 * 60_000_000
