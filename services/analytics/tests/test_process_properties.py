"""Properties of the process view over generated histories: every request follows the chain of a repair
(possibly phone-resolved, re-assigned, with failed visits, cut short anywhere since the rest has not happened
yet), and the test knows from its plan when each step began and ended — an independent reference for the
step durations the view folds from the events, in whatever order and however often they arrive."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.metrics import Window
from services.analytics.process import (
    CONTRACT_STEPS,
    STEPS,
    cohort_by_key,
    finding_rows,
    handoff_rows,
    process_trails,
    rework_rows,
    step_stats,
    variant_rows,
)
from services.analytics.records import AnalyticsEvent
from services.analytics.views import GroupBy
from shared.testing.properties import examples

MIN = 60_000_000
WINDOW = Window(0, 2 * 1440 * MIN)
CUSTOMER_SIDE = {"customer_absent", "site_not_ready"}  # the customer kept us waiting: absent, no water/power
REASONS = [None, "customer_absent", "site_not_ready", "parts_unavailable", "needs_expert"]


@dataclass
class Plan:
    """One request's history and, computed from the plan itself, its expected step durations (µs)."""

    request_id: str
    events: list[AnalyticsEvent] = field(default_factory=list)
    times: dict[str, int] = field(default_factory=dict)  # first time of each milestone that happened
    customer: int = 0
    received_at: int = 0
    dealer: str | None = None

    def expected_steps(self) -> dict[str, int]:
        t = self.times
        bounds = {
            "triage": ("received", "triaged"),
            "assign": ("field_triaged", "assigned"),
            "accept": ("assigned", "accepted"),
            "travel": ("accepted", "arrived"),
            "repair": ("arrived", "fixed"),
            "follow_up": ("fixed", "revisit"),
        }
        return {step: t[end] - t[start] for step, (start, end) in bounds.items() if start in t and end in t}


@st.composite
def plan(draw, index: int) -> Plan:
    p = draw(_history(index))
    if "fixed" not in p.times:
        p.customer = 0  # customer time is told apart inside a measured repair step only
    return p


@st.composite
def _history(draw, index: int) -> Plan:
    rid, jid = f"r{index}", f"j{index}"
    p = Plan(rid, dealer=draw(st.sampled_from(["D1", "D2", "D3", None])))
    clock = draw(st.integers(-600, 3 * 1440)) * MIN
    steps_done = draw(st.integers(1, 14))  # how far the request got by now
    lag = draw(st.integers(0, 3000))  # late sync: recorded this many minutes after it happened

    def happen(milestone: str | None, event_type: str, job: bool = False, **data) -> bool:
        nonlocal clock
        if len(p.events) >= steps_done:
            return False
        clock += draw(st.integers(0, 300)) * MIN
        p.events.append(
            AnalyticsEvent(
                str(uuid.uuid4()),
                event_type,
                rid,
                jid if job else None,
                clock,
                clock + lag * MIN,
                len(p.events) + 1,
                data,
            )
        )
        if milestone is not None:
            p.times.setdefault(milestone, clock)
        return True

    happen("received", "service_request.received", dealer_id=p.dealer, region="north", product_line="baler")
    p.received_at = p.times["received"]
    phone = draw(st.booleans())
    if not happen("triaged", "service_request.triaged", mode="phone" if phone else "onsite", priority="P3"):
        return p
    if phone:
        return p
    p.times["field_triaged"] = p.times["triaged"]
    for technician in draw(st.lists(st.sampled_from(["T1", "T2", "T3"]), min_size=1, max_size=4)):
        happen("assigned", "job.assigned", job=True, center_id="C1", technician_id=technician)
    happen("accepted", "job.accepted", job=True, technician_id="T1")
    waiting_since: tuple[str, int] | None = None
    for reason in draw(st.lists(st.sampled_from(REASONS), max_size=3)):
        if not happen("arrived", "job.arrived", job=True, technician_id="T1"):
            return p
        if waiting_since is not None:
            p.customer += clock - waiting_since[1]
            waiting_since = None
        if not happen(
            None, "job.completed", job=True, technician_id="T1", fixed=False, **({"reason": reason} if reason else {})
        ):
            return p
        if reason in CUSTOMER_SIDE:
            waiting_since = (reason, clock)
    if happen("arrived", "job.arrived", job=True, technician_id="T1") and waiting_since is not None:
        p.customer += clock - waiting_since[1]
    if not happen("fixed", "job.completed", job=True, technician_id="T1", fixed=True):
        return p
    happen("revisit", "revisit.done", job=True, satisfaction=4, nps=8)
    return p


@st.composite
def histories(draw) -> list[Plan]:
    return [draw(plan(i)) for i in range(draw(st.integers(1, 8)))]


def events_of(plans: list[Plan]) -> list[AnalyticsEvent]:
    return [e for p in plans for e in p.events]


@settings(max_examples=examples(150), deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_the_view_measures_each_step_as_the_plan_says_whatever_the_arrival_order(plans, rnd: random.Random):
    events = events_of(plans)
    arrived = events + rnd.sample(events, len(events) // 2)  # redelivered
    rnd.shuffle(arrived)
    trails = {t.request_id: t for t in process_trails(arrived)}
    for p in plans:
        trail = trails[p.request_id]
        assert dict(trail.steps) == p.expected_steps()
        assert trail.customer_micros == p.customer
        if len(trail.steps) == len(CONTRACT_STEPS):  # the six steps tile the time from receipt to the follow-up
            assert sum(trail.steps.values()) == p.times["revisit"] - p.times["received"]
    for view in (handoff_rows, rework_rows, variant_rows, finding_rows):
        assert view(list(trails.values()), WINDOW, GroupBy.dealer) == view(
            process_trails(events), WINDOW, GroupBy.dealer
        )


@settings(max_examples=examples(150), deadline=None)
@given(histories())
def test_rows_add_up_across_keys_and_shares_to_a_hundred(plans):
    trails = process_trails(events_of(plans))
    cohort = [p for p in plans if p.received_at in WINDOW]
    everyone = cohort_by_key(trails, WINDOW, GroupBy.all)
    by_dealer = cohort_by_key(trails, WINDOW, GroupBy.dealer)
    assert sum(len(g) for g in by_dealer.values()) == len(cohort) == sum(len(g) for g in everyone.values())
    if cohort:
        whole = step_stats(everyone["all"])
        for step in STEPS:
            parts = [step_stats(g)[step] for g in by_dealer.values()]
            assert whole[step].count == sum(s.count for s in parts)
            assert whole[step].total == sum(s.total for s in parts)

    rows = handoff_rows(trails, WINDOW, GroupBy.dealer)
    shares: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        assert 0 < row["count"] <= len(by_dealer[row["key"]])
        assert row["median_minutes"] <= row["p90_minutes"] <= row["total_minutes"]
        assert 0 <= row["customer_minutes"] <= row["total_minutes"]
        if row["share_pct"] is not None and row["step"] in CONTRACT_STEPS:  # the six steps' shares make 100
            shares[row["key"]].append(row["share_pct"])
    for key, values in shares.items():
        assert abs(sum(values) - 100) <= 0.05 * len(values) + 1e-9, (key, values)

    for row in rework_rows(trails, WINDOW, GroupBy.dealer):
        assert sum(row["reasons"].values()) == row["repeat_visits"]
        assert all(v is None or 0 <= v <= 100 for v in (row["reassigned_pct"], row["repeat_visit_pct"]))
        assert (row["repeat_visits"] > 0) == bool(row["repeat_visit_pct"])

    variants = variant_rows(trails, WINDOW, GroupBy.dealer)
    for key, group in by_dealer.items():
        assert sum(r["requests"] for r in variants if r["key"] == key) == len(group)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=30), st.lists(st.integers(0, 50), min_size=1, max_size=30))
def test_the_others_median_without_copying_them_is_the_median_of_the_others(mine, others):
    from services.analytics.metrics import median, median_without

    assert median_without(sorted(mine + others), sorted(mine)) == median(others)
