"""The views from facts: cohorts by received time, window edges, backlog at `to`, groupings, nulls."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.analytics.facts import RequestFact, RevisitFact
from services.analytics.metrics import MICROS_PER_DAY, Window, to_micros
from services.analytics.views import (
    GroupBy,
    duration_histograms,
    satisfaction_rows,
    scorecard_rows,
    throughput_rows,
    trend_rows,
)

MIN = 60_000_000
DAY1 = to_micros(datetime(2025, 3, 1, tzinfo=UTC))
WINDOW = Window.of_dates(date(2025, 3, 1), date(2025, 3, 3))  # two days


def request(rid: str, received: int | None, **fields) -> RequestFact:
    base = dict(dealer_key="D1", region="north", product_line="baler")
    base.update(fields)
    return RequestFact(request_id=rid, received_at=received, **base)


def revisit(eid: str, at: int, satisfaction: int, nps: int | None = None, **fields) -> RevisitFact:
    base = dict(
        request_id="r",
        job_id="j",
        dealer_key="D1",
        region="north",
        product_line="baler",
        center_id="C1",
        technician_id="T1",
    )
    base.update(fields)
    return RevisitFact(event_id=eid, time=at, satisfaction=satisfaction, nps=nps, **base)


def test_nothing_in_the_window_gives_no_rows():
    assert throughput_rows([], WINDOW, GroupBy.all) == []
    assert satisfaction_rows([], WINDOW, GroupBy.dealer) == []
    assert scorecard_rows([], [], WINDOW, GroupBy.center) == []
    old = request("old", DAY1 - 10 * MICROS_PER_DAY, resolved_at=DAY1 - 9 * MICROS_PER_DAY)
    assert throughput_rows([old], WINDOW, GroupBy.all) == []


def test_the_cohort_is_received_in_from_to_and_its_edges_are_exact():
    facts = [
        request("at-start", DAY1),
        request("before", DAY1 - 1),
        request("last", WINDOW.end - 1),
        request("at-end", WINDOW.end),
    ]
    row = throughput_rows(facts, WINDOW, GroupBy.all)[0]
    assert row["received"] == 2
    assert row["backlog"] == 3  # received before `to` and still open; the one received at `to` is not yet


def test_resolved_counts_resolutions_in_the_window_and_backlog_is_taken_at_to():
    facts = [
        request("earlier-resolved-inside", DAY1 - MICROS_PER_DAY, resolved_at=DAY1 + 5),
        request("inside-resolved-after", DAY1, resolved_at=WINDOW.end),
        request("inside-resolved-at-end-minus-1", DAY1, resolved_at=WINDOW.end - 1),
        request("cancelled-inside", DAY1, cancelled_at=DAY1 + MIN),
        request("cancelled-after", DAY1, cancelled_at=WINDOW.end + MIN),
    ]
    row = throughput_rows(facts, WINDOW, GroupBy.all)[0]
    assert (row["received"], row["resolved"], row["backlog"]) == (4, 2, 2)
    by_day = {r["key"]: r for r in throughput_rows(facts, WINDOW, GroupBy.day)}
    assert (by_day["2025-02-28"]["received"], by_day["2025-02-28"]["resolved"]) == (0, 1)  # keyed by received day
    assert by_day["2025-02-28"]["escalated_pct"] is None and by_day["2025-02-28"]["complaint_rate_pct"] is None


def test_percentages_and_minutes_are_null_where_nothing_counts():
    row = throughput_rows([request("a", DAY1)], WINDOW, GroupBy.all)[0]
    assert row["phone_resolved_pct"] is None and row["first_time_fix_pct"] is None and row["sla_met_pct"] is None
    assert row["median_minutes_to_triage"] is None and row["p90_minutes_to_resolve"] is None
    assert (row["escalated_pct"], row["complaint_rate_pct"]) == (0.0, 0.0)


def test_time_to_steps_use_medians_and_nearest_rank_p90_over_the_cohort():
    facts = [
        request(
            f"r{i}", DAY1, first_assigned_at=DAY1 + (i + 1) * MIN, triaged_at=DAY1 + i * MIN, phone_triaged=i % 2 == 0
        )
        for i in range(10)
    ]
    row = throughput_rows(facts, WINDOW, GroupBy.all)[0]
    assert row["median_minutes_to_assign"] == 5.5 and row["p90_minutes_to_assign"] == 9.0
    assert row["median_minutes_to_triage"] == 4.5
    assert row["phone_resolved_pct"] == 50.0


def test_center_and_technician_leave_out_requests_without_a_completed_job():
    facts = [
        request(
            "done",
            DAY1,
            center_id="C1",
            technician_id="T1",
            jobs_completed=1,
            jobs_first_fixed=1,
            jobs_sla_met=0,
            complaints=3,
        ),
        request("open", DAY1),
    ]
    assert [r["key"] for r in throughput_rows(facts, WINDOW, GroupBy.center)] == ["C1"]
    row = throughput_rows(facts, WINDOW, GroupBy.technician)[0]
    assert (row["key"], row["received"], row["first_time_fix_pct"], row["sla_met_pct"], row["complaint_rate_pct"]) == (
        "T1",
        1,
        100.0,
        0.0,
        300.0,
    )


def test_every_grouping_keys_requests_by_their_own_attributes():
    fact = request(
        "a", DAY1 + 5 * MIN, dealer_key="direct", region="south", product_line="oven", center_id="C", technician_id="T"
    )
    keys = {g: [r["key"] for r in throughput_rows([fact], WINDOW, g)] for g in GroupBy}
    assert keys == {
        GroupBy.dealer: ["direct"],
        GroupBy.center: ["C"],
        GroupBy.technician: ["T"],
        GroupBy.region: ["south"],
        GroupBy.product_line: ["oven"],
        GroupBy.day: ["2025-03-01"],
        GroupBy.month: ["2025-03"],
        GroupBy.all: ["all"],
    }


def test_satisfaction_counts_revisits_by_their_own_time_with_csat_csi_nps_and_low_scores():
    answers = [
        revisit("a", DAY1, 5, 10),
        revisit("b", DAY1 + MIN, 4, 9),
        revisit("c", DAY1 + 2 * MIN, 2, 6),
        revisit("d", DAY1 + 3 * MIN, 1, None),
        revisit("e", WINDOW.end, 1, 0),
        revisit("f", DAY1 - 1, 5, 10),
    ]
    assert satisfaction_rows(answers, WINDOW, GroupBy.dealer) == [
        {"key": "D1", "responses": 4, "avg_score": 3.0, "csat_pct": 50.0, "csi": 60.0, "nps": 33.3, "low_scores": 2}
    ]
    by_day = satisfaction_rows(answers, WINDOW, GroupBy.day)
    assert [r["key"] for r in by_day] == ["2025-03-01"]


def test_csi_is_computed_from_the_unrounded_average():
    # average 4.3333…: rounded first it would be 4.3 → 86.0; from the exact value it is 86.666… → 86.7
    answers = [revisit("a", DAY1, 5), revisit("b", DAY1, 4), revisit("c", DAY1, 4)]
    row = satisfaction_rows(answers, WINDOW, GroupBy.all)[0]
    assert (row["avg_score"], row["csi"], row["nps"]) == (4.3, 86.7, None)


def test_the_scorecard_joins_cohort_jobs_and_revisits_per_key_and_weighs_unrounded_parts():
    facts = [
        request("a", DAY1, technician_id="T1", center_id="C", jobs_completed=3, jobs_first_fixed=2, jobs_sla_met=2)
    ]
    answers = [
        revisit("x", DAY1, 5, technician_id="T1"),
        revisit("y", DAY1, 3, technician_id="T1"),
        revisit("z", DAY1, 2, technician_id="T2"),
    ]
    rows = {r["key"]: r for r in scorecard_rows(facts, answers, WINDOW, GroupBy.technician)}
    # T1: 0.2 × 66.67 + 0.3 × 66.67 + 0.5 × 50 = 58.33
    assert rows["T1"] == {"key": "T1", "sla_met_pct": 66.7, "first_time_fix_pct": 66.7, "csat_pct": 50.0, "score": 58.3}
    assert rows["T2"] == {"key": "T2", "sla_met_pct": None, "first_time_fix_pct": None, "csat_pct": 0.0, "score": 0.0}
    no_parts = scorecard_rows([request("b", DAY1)], [], WINDOW, GroupBy.all)
    assert no_parts == [
        {"key": "all", "sla_met_pct": None, "first_time_fix_pct": None, "csat_pct": None, "score": None}
    ]


def test_the_trend_gives_each_days_arrivals_resolutions_and_backlog_at_its_end():
    facts = [
        request("old-open", DAY1 - 3 * MICROS_PER_DAY),
        request("old-closed-inside", DAY1 - MICROS_PER_DAY, resolved_at=DAY1 + MICROS_PER_DAY + 1),
        request("new", DAY1 + 1, cancelled_at=DAY1 + 2),
        request("second-day", DAY1 + MICROS_PER_DAY + 5),
    ]
    assert trend_rows(facts, WINDOW) == [
        {"day": "2025-03-01", "received": 1, "resolved": 0, "backlog": 2},
        {"day": "2025-03-02", "received": 1, "resolved": 1, "backlog": 2},
    ]
    assert [r["backlog"] for r in trend_rows(facts, WINDOW)][-1] == throughput_rows(facts, WINDOW, GroupBy.all)[0][
        "backlog"
    ]


def test_the_duration_histogram_buckets_the_cohort_and_agrees_with_the_median():
    facts = [request(f"r{i}", DAY1, triaged_at=DAY1 + m * MIN) for i, m in enumerate([5, 14.99, 15, 300, 20000])]
    triage = duration_histograms(facts, WINDOW)["triage"]
    assert [b["count"] for b in triage["buckets"]] == [2, 1, 0, 1, 0, 0, 0, 1]
    assert (triage["count"], triage["median_minutes"], triage["p90_minutes"]) == (5, 15.0, 20000.0)
    assert duration_histograms(facts, WINDOW)["assign"]["count"] == 0
