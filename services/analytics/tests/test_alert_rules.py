"""Alert rules from the counts over the lookback (no I/O)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from services.analytics.alerts import AlertKind, AlertPolicy, AlertSamples, evaluate_alerts
from services.analytics.monitor import pause_after

POLICY = AlertPolicy(
    sla_met_pct=90,
    csat_pct=80,
    min_jobs=2,
    min_responses=2,
    backlog_growth_pct=50,
    backlog_growth_min=2,
    lookback_days=7,
    overrides={"center:C9": {"csat_pct": 40}},
)


def kinds(samples: AlertSamples) -> set:
    return {(c.kind, c.scope, c.key) for c in evaluate_alerts(samples, POLICY)}


def test_csat_below_its_threshold_alerts_once_the_sample_is_big_enough():
    assert kinds(AlertSamples(answers={("dealer", "D1"): (1, 0)})) == set()  # one answer is not a sample
    assert kinds(AlertSamples(answers={("dealer", "D1"): (2, 1), ("center", "C1"): (2, 1)})) == {
        (AlertKind.csat_below, "dealer", "D1"),
        (AlertKind.csat_below, "center", "C1"),
    }
    assert kinds(AlertSamples(answers={("dealer", "D1"): (5, 4)})) == set()  # exactly the threshold is fine


def test_a_threshold_of_its_own_overrides_the_default():
    assert kinds(AlertSamples(answers={("center", "C9"): (2, 1)})) == set()


def test_sla_met_below_its_threshold_alerts_with_its_exact_value_and_a_readable_detail():
    [condition] = evaluate_alerts(AlertSamples(jobs={("dealer", "D1"): (3, 1)}), POLICY)
    assert (condition.kind, condition.value, condition.threshold) == (AlertKind.sla_met_below, Fraction(100, 3), 90)
    assert condition.detail == (
        "SLA met of dealer D1 is 33.3% over the last 7 days (3 in the sample), below its threshold of 90.0%"
    )
    assert kinds(AlertSamples(jobs={("dealer", "D1"): (0, 0)})) == set()


def test_a_backlog_that_grew_enough_over_the_lookback_alerts():
    growing = {("dealer", "D1"): (4, 2), ("all", "all"): (4, 2)}
    assert kinds(AlertSamples(backlog=growing)) == {
        (AlertKind.backlog_growing, "dealer", "D1"),
        (AlertKind.backlog_growing, "all", "all"),
    }
    assert kinds(AlertSamples(backlog={("dealer", "D1"): (3, 2)})) == set()  # +1: below the minimum increase
    assert kinds(AlertSamples(backlog={("dealer", "D1"): (14, 10)})) == set()  # +40 %: below 50 %
    assert kinds(AlertSamples(backlog={("dealer", "D1"): (2, 0)})) == {(AlertKind.backlog_growing, "dealer", "D1")}


def test_a_slow_alert_evaluation_is_followed_by_a_pause_that_keeps_it_to_its_share_of_the_process():
    # 1.5 s of evaluating at a 20 % share: 6 s of pause, so evaluating is 1.5 of every 7.5 s.
    assert pause_after(1.5, min_interval=1.0, max_busy_share=0.2) == pytest.approx(6.0)
    assert 1.5 / (1.5 + pause_after(1.5, min_interval=1.0, max_busy_share=0.2)) == pytest.approx(0.2)


def test_a_quick_alert_evaluation_waits_only_the_minimum_interval():
    assert pause_after(0.01, min_interval=1.0, max_busy_share=0.2) == 1.0
    assert pause_after(0.0, min_interval=0.0, max_busy_share=1.0) == 0.0
