"""The process view's reference definitions on small histories computed by hand: hand-offs (late-synced steps,
re-assignments, repeat visits, phone-resolved requests, requests received in the window and resolved after
it), rework, variants and findings."""

from __future__ import annotations

import random

from services.analytics.metrics import Window
from services.analytics.process import (
    FindingRules,
    finding_rows,
    handoff_rows,
    process_trails,
    recorded_by,
    rework_rows,
    variant_rows,
)
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import event_at as event
from services.analytics.views import GroupBy

MIN = 60_000_000
WINDOW = Window(0, 5000 * MIN)


def received(request_id: str, at: float, dealer: str | None = "D1") -> AnalyticsEvent:
    return event("service_request.received", at, request_id, dealer_id=dealer, region="north", product_line="baler")


def triaged(request_id: str, at: float, mode: str = "onsite") -> AnalyticsEvent:
    return event("service_request.triaged", at, request_id, mode=mode, priority="P3")


def step(event_type: str, request_id: str, at: float, recorded: float | None = None, **data) -> AnalyticsEvent:
    return event(event_type, at, request_id, f"job-{request_id}", recorded, **data)


def serviced_with_a_failed_visit() -> list[AnalyticsEvent]:
    """r1 (D1): re-assigned before acceptance; acceptance and first arrival synced late from the technician's
    phone; the first visit found nobody home; fixed on the second."""
    return [
        received("r1", 0),
        triaged("r1", 10),
        step("job.created", "r1", 10, dealer_id="D1", region="north", product_line="baler"),
        step("job.assigned", "r1", 11, center_id="C1", technician_id="T1"),
        step("job.assigned", "r1", 20, center_id="C2", technician_id="T2"),
        step("job.accepted", "r1", 30, recorded=500, technician_id="T2"),
        step("job.arrived", "r1", 100, recorded=600, technician_id="T2"),
        step("job.completed", "r1", 130, recorded=601, technician_id="T2", fixed=False, reason="customer_absent"),
        step("job.arrived", "r1", 1500, technician_id="T2"),
        step("job.completed", "r1", 1560, technician_id="T2", fixed=True, reason=None),
        step("revisit.done", "r1", 3000, satisfaction=4, nps=9),
    ]


def phone_resolved() -> list[AnalyticsEvent]:
    return [received("r2", 0), triaged("r2", 4, mode="phone")]


def received_in_the_window_resolved_after_it() -> list[AnalyticsEvent]:
    return [
        received("r3", 4940),
        triaged("r3", 4945),
        step("job.assigned", "r3", 4946, center_id="C1", technician_id="T1"),
        step("job.accepted", "r3", 4990, technician_id="T1"),
        step("job.arrived", "r3", 5100, technician_id="T1"),
        step("job.completed", "r3", 5200, technician_id="T1", fixed=True),
    ]


def received_before_the_window() -> list[AnalyticsEvent]:
    return [received("r4", -50), triaged("r4", 30), step("job.assigned", "r4", 40, center_id="C1", technician_id="T1")]


def bounced_and_failed_twice() -> list[AnalyticsEvent]:
    """r5 (D2): T1 → T2 → T1; two failed visits (one recorded before reasons existed); a complaint naming
    only the job, reopened by an event naming only the complaint, and one never reopened."""
    reopened = event("complaint.reopened", 900, None, None, complaint_id="K1")
    return [
        received("r5", 100, dealer="D2"),
        triaged("r5", 130),
        step("job.assigned", "r5", 131, center_id="C1", technician_id="T1"),
        step("job.assigned", "r5", 140, center_id="C2", technician_id="T2"),
        step("job.assigned", "r5", 150, center_id="C1", technician_id="T1"),
        step("job.accepted", "r5", 160, technician_id="T1"),
        step("job.arrived", "r5", 200, technician_id="T1"),
        step("job.completed", "r5", 210, technician_id="T1", fixed=False),
        step("job.arrived", "r5", 300, technician_id="T1"),
        step("job.completed", "r5", 310, technician_id="T1", fixed=False, reason="parts_unavailable"),
        step("job.arrived", "r5", 700, technician_id="T1"),
        step("job.completed", "r5", 720, technician_id="T1", fixed=True),
        event("complaint.opened", 400, None, "job-r5", complaint_id="K1", dealer_id="D2"),
        event("complaint.opened", 410, "r5", None, complaint_id="K2", dealer_id="D2"),
        reopened,
    ]


def everything() -> list[AnalyticsEvent]:
    return (
        serviced_with_a_failed_visit()
        + phone_resolved()
        + received_in_the_window_resolved_after_it()
        + received_before_the_window()
        + bounced_and_failed_twice()
    )


def rows_by_step(rows: list[dict], key: str) -> dict[str, dict]:
    return {r["step"]: r for r in rows if r["key"] == key}


def test_each_step_is_measured_once_per_request_from_its_first_start_to_its_first_end():
    (trail,) = process_trails(serviced_with_a_failed_visit())
    assert trail.steps == {
        "triage": 10 * MIN,
        "assign": 1 * MIN,
        "accept": 19 * MIN,
        "travel": 70 * MIN,
        "repair": 1460 * MIN,
        "follow_up": 1440 * MIN,
    }
    assert sum(trail.steps.values()) == 3000 * MIN  # the six steps tile received → follow-up
    assert trail.customer_micros == (1500 - 130) * MIN  # nobody home: the wait for the next visit is theirs


def test_handoff_rows_of_a_dealer_follow_the_contract():
    rows = handoff_rows(process_trails(everything()), WINDOW, GroupBy.dealer)
    d1 = rows_by_step(rows, "D1")
    assert list(d1) == ["triage", "assign", "accept", "travel", "repair", "follow_up"]
    # triage: r1 10, r2 4 (phone), r3 5 → median 5, p90 the 3rd smallest (10); total 19 min.
    assert d1["triage"] == {
        "key": "D1",
        "step": "triage",
        "owner": "hotline",
        "count": 3,
        "median_minutes": 5.0,
        "p90_minutes": 10.0,
        "total_minutes": 19.0,
        "share_pct": 0.6,
        "customer_minutes": 0.0,
    }
    # the phone request has no assign/accept/travel/repair; r3 (resolved after the window) counts in full.
    assert [d1[s]["count"] for s in ("assign", "accept", "travel", "repair", "follow_up")] == [2, 2, 2, 2, 1]
    assert (d1["assign"]["median_minutes"], d1["assign"]["total_minutes"]) == (1.0, 2.0)  # 1 and 1
    assert (d1["accept"]["median_minutes"], d1["accept"]["p90_minutes"]) == (31.5, 44.0)  # 19 and 44
    assert (d1["travel"]["median_minutes"], d1["travel"]["total_minutes"]) == (90.0, 180.0)  # 70 and 110
    assert (d1["repair"]["total_minutes"], d1["repair"]["customer_minutes"]) == (1560.0, 1370.0)  # 1460 + 100
    assert (d1["follow_up"]["owner"], d1["follow_up"]["total_minutes"]) == ("hotline", 1440.0)
    # grand total 19 + 2 + 63 + 180 + 1560 + 1440 = 3264 minutes
    assert [d1[s]["share_pct"] for s in d1] == [0.6, 0.1, 1.9, 5.5, 47.8, 44.1]
    d2 = rows_by_step(rows, "D2")
    assert (d2["triage"]["count"], d2["assign"]["total_minutes"], d2["repair"]["total_minutes"]) == (1, 1.0, 520.0)
    assert "follow_up" not in d2  # not revisited yet: a step counts only once both ends exist
    assert {r["key"] for r in rows} == {"D1", "D2"}  # r4 was received before the window


def test_the_hand_offs_as_they_stood_before_the_late_sync():
    before = list(recorded_by(serviced_with_a_failed_visit(), 400 * MIN))
    d1 = rows_by_step(handoff_rows(process_trails(before), WINDOW, GroupBy.dealer), "D1")
    assert list(d1) == ["triage", "assign"]  # acceptance and arrival were still on the technician's phone
    after = rows_by_step(
        handoff_rows(process_trails(recorded_by(serviced_with_a_failed_visit(), 700 * MIN)), WINDOW, GroupBy.dealer),
        "D1",
    )
    assert list(after) == ["triage", "assign", "accept", "travel"] and after["accept"]["median_minutes"] == 19.0


def test_the_view_does_not_depend_on_the_order_the_events_arrived_in_or_on_duplicates():
    events = everything()
    shuffled = events + random.Random(7).sample(events, len(events))
    random.Random(3).shuffle(shuffled)
    for view in (handoff_rows, rework_rows, variant_rows, finding_rows):
        assert view(process_trails(shuffled), WINDOW, GroupBy.dealer) == view(
            process_trails(events), WINDOW, GroupBy.dealer
        )


def test_rework_counts_reassignments_repeat_visits_by_reason_and_reopened_complaints():
    rows = {r["key"]: r for r in rework_rows(process_trails(everything()), WINDOW, GroupBy.dealer)}
    assert rows["D1"] == {
        "key": "D1",
        "jobs": 2,
        "reassigned_pct": 50.0,
        "repeat_visit_pct": 50.0,
        "repeat_visits": 1,
        "reasons": {"customer_absent": 1},
        "reopened_complaints": 0,
    }
    assert rows["D2"] == {
        "key": "D2",
        "jobs": 1,
        "reassigned_pct": 100.0,
        "repeat_visit_pct": 100.0,
        "repeat_visits": 2,
        "reasons": {"parts_unavailable": 1, "unspecified": 1},
        "reopened_complaints": 1,
    }


def test_rework_keyed_by_the_technician_of_the_first_completion_leaves_out_requests_without_one():
    rows = {r["key"]: r for r in rework_rows(process_trails(everything()), WINDOW, GroupBy.technician)}
    assert set(rows) == {"T1", "T2"}  # r3 is completed by T1 after the window; r2 has no job
    assert (rows["T2"]["jobs"], rows["T1"]["jobs"]) == (1, 2)


def test_variants_are_the_paths_taken_with_how_many_and_how_long():
    rows = variant_rows(process_trails(everything()), WINDOW, GroupBy.all)
    paths = {tuple(r["path"]): r for r in rows}
    r1 = paths[
        (
            "received",
            "triaged",
            "assigned",
            "reassigned",
            "accepted",
            "arrived",
            "not_fixed",
            "arrived",
            "fixed",
            "follow_up",
        )
    ]
    assert (r1["requests"], r1["median_minutes"], r1["request_ids"]) == (1, 3000.0, ["r1"])
    phone = paths[("received", "resolved_by_phone")]
    assert (phone["requests"], phone["share_pct"], phone["median_minutes"]) == (1, 25.0, 4.0)
    assert sum(r["requests"] for r in rows) == 4  # r1, r2, r3, r5: the cohort


def test_requests_with_the_same_path_make_one_variant():
    events = [e for i in range(3) for e in (received(f"p{i}", i), triaged(f"p{i}", i + 2 * (i + 1), "phone"))]
    (row,) = variant_rows(process_trails(events), WINDOW, GroupBy.all)
    assert (row["requests"], row["share_pct"], row["median_minutes"], row["p90_minutes"]) == (3, 100.0, 4.0, 6.0)
    assert row["request_ids"] == ["p0", "p1", "p2"]


def test_findings_name_the_slow_hand_off_the_ping_pong_and_the_repeat_visits_with_their_requests():
    rules = FindingRules(handoff_targets={"triage": 4, "assign": 15})
    found = finding_rows(process_trails(everything()), WINDOW, GroupBy.dealer, rules)
    slow = [f for f in found if f["kind"] == "slow_handoff"]
    # D1 triage median 5 > 4 (r1 10 and r3 5 over it; r2 4 is not); D2 triage 30 > 4; assign never over 15.
    assert [(f["key"], f["step"], f["owner"], f["request_ids"], f["median_minutes"]) for f in slow] == [
        ("D1", "triage", "hotline", ["r1", "r3"], 5.0),
        ("D2", "triage", "hotline", ["r5"], 30.0),
    ]
    (ping_pong,) = [f for f in found if f["kind"] == "ping_pong"]
    assert (ping_pong["key"], ping_pong["count"], ping_pong["request_ids"]) == ("D2", 1, ["r5"])
    repeats = {(f["key"], f["reason"]): f for f in found if f["kind"] == "repeat_visits"}
    assert set(repeats) == {("D1", "customer_absent"), ("D2", "parts_unavailable"), ("D2", "unspecified")}
    absent = repeats["D1", "customer_absent"]
    assert (absent["side"], absent["customer_minutes"], absent["request_ids"]) == ("customer", 1370.0, ["r1"])
    assert repeats["D2", "parts_unavailable"]["side"] == "ours"


def test_a_dealer_much_slower_than_the_others_is_a_finding_only_with_enough_requests_on_both_sides():
    def dealer(name: str, triage_minutes: float, n: int) -> list[AnalyticsEvent]:
        return [
            e
            for i in range(n)
            for e in (received(f"{name}-{i}", 10 * i, name), triaged(f"{name}-{i}", 10 * i + triage_minutes + i % 2))
        ]

    peers = dealer("D1", 10, 5) + dealer("D2", 12, 5)
    slow = finding_rows(process_trails(peers + dealer("D9", 40, 5)), WINDOW, GroupBy.dealer, FindingRules({}))
    (finding,) = slow
    assert (finding["kind"], finding["key"], finding["step"]) == ("slower_than_peers", "D9", "triage")
    assert (finding["median_minutes"], finding["peer_median_minutes"], finding["requests"]) == (40.0, 11.5, 5)
    assert finding_rows(process_trails(peers + dealer("D9", 40, 4)), WINDOW, GroupBy.dealer, FindingRules({})) == []
    # twice as slow but only 8 minutes more: noise, not a finding
    assert (
        finding_rows(
            process_trails(dealer("D1", 7, 5) + dealer("D2", 8, 5) + dealer("D9", 16, 5)),
            WINDOW,
            GroupBy.dealer,
            FindingRules({}),
        )
        == []
    )


def test_a_technician_given_the_job_back_is_ping_pong_even_with_two_reassignments_only():
    events = [
        received("r", 0),
        triaged("r", 1),
        step("job.assigned", "r", 2, technician_id="T1", center_id="C"),
        step("job.assigned", "r", 3, technician_id="T2", center_id="C"),
    ]
    assert [j.ping_pong for t in process_trails(events) for j in t.jobs] == [False]
    back = events + [step("job.assigned", "r", 4, technician_id="T1", center_id="C")]
    assert [j.ping_pong for t in process_trails(back) for j in t.jobs] == [True]
