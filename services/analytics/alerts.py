"""Alert rules, with no I/O: which dealers and centers are below their SLA-met or CSAT threshold over the
last days, and where the backlog is growing. The monitor counts the samples in the database (sums over the
same facts the views read) and re-evaluates the rules as events arrive, raising new alerts and clearing those
whose condition stopped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction

from services.analytics.facts import DIRECT
from services.analytics.metrics import percentage, rounded


class AlertKind(StrEnum):
    sla_met_below = "sla_met_below"
    csat_below = "csat_below"
    backlog_growing = "backlog_growing"
    # The process view's findings (process.FindingRules), one alert per finding, naming its requests.
    slow_handoff = "slow_handoff"
    slower_than_peers = "slower_than_peers"
    ping_pong = "ping_pong"
    repeat_visits = "repeat_visits"


@dataclass(frozen=True)
class AlertPolicy:
    """Thresholds (percentages), with per-key overrides such as {"dealer:D1": {"csat_pct": 70}}."""

    sla_met_pct: float = 90.0
    csat_pct: float = 80.0
    min_jobs: int = 5
    min_responses: int = 5
    backlog_growth_pct: float = 20.0
    backlog_growth_min: int = 5
    lookback_days: int = 7
    overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def threshold(self, scope: str, key: str, metric: str) -> Fraction:
        value = self.overrides.get(f"{scope}:{key}", {}).get(metric, getattr(self, metric))
        return Fraction(str(value))


ScopeKey = tuple[str, str]  # ("dealer", "D1"), ("center", "C1"), ("all", "all")


@dataclass
class AlertSamples:
    """Counts over the lookback, per scope and key.

    jobs: (jobs with a completion, of which no SLA breach) of the requests received in the lookback;
    answers: (revisits, of which satisfaction ≥ 4) in the lookback; backlog: (open now, open a lookback ago)."""

    jobs: dict[ScopeKey, tuple[int, int]] = field(default_factory=dict)
    answers: dict[ScopeKey, tuple[int, int]] = field(default_factory=dict)
    backlog: dict[ScopeKey, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertCondition:
    kind: AlertKind
    scope: str  # dealer | center | all
    key: str
    value: Fraction
    threshold: Fraction
    detail: str
    subject: str | None = None  # a finding's step or reason: part of the alert's kind ("slow_handoff:triage")
    request_ids: tuple[str, ...] | None = None  # a finding's requests (None: a rule that names none)

    @property
    def identity(self) -> tuple[str, str, str]:
        kind = self.kind.value if self.subject is None else f"{self.kind.value}:{self.subject}"
        return (kind, self.scope, self.key)


def _below(
    kind: AlertKind,
    metric: str,
    label: str,
    scope_key: ScopeKey,
    counts: tuple[int, int],
    minimum: int,
    policy: AlertPolicy,
) -> AlertCondition | None:
    sample, good = counts
    value = percentage(good, sample)
    if value is None or sample < minimum:
        return None
    scope, key = scope_key
    threshold = policy.threshold(scope, key, metric)
    if value >= threshold:
        return None
    return AlertCondition(
        kind,
        scope,
        key,
        value,
        threshold,
        f"{label} of {scope} {key} is {rounded(value)}% over the last {policy.lookback_days} "
        f"days ({sample} in the sample), below its threshold of {rounded(threshold)}%",
    )


def evaluate_alerts(samples: AlertSamples, policy: AlertPolicy) -> list[AlertCondition]:
    """Every alert condition the samples show."""
    found = [
        *(
            _below(AlertKind.sla_met_below, "sla_met_pct", "SLA met", scope_key, counts, policy.min_jobs, policy)
            for scope_key, counts in sorted(samples.jobs.items())
        ),
        *(
            _below(AlertKind.csat_below, "csat_pct", "CSAT", scope_key, counts, policy.min_responses, policy)
            for scope_key, counts in sorted(samples.answers.items())
        ),
    ]
    growth_pct = Fraction(str(policy.backlog_growth_pct))
    for (scope, key), (now, before) in sorted(samples.backlog.items()):
        growth = now - before
        if growth >= policy.backlog_growth_min and growth * 100 >= before * growth_pct:
            found.append(
                AlertCondition(
                    AlertKind.backlog_growing,
                    scope,
                    key,
                    Fraction(now),
                    Fraction(before),
                    f"backlog of {scope} {key} grew from {before} to {now} open requests over the last "
                    f"{policy.lookback_days} days",
                )
            )
    return [condition for condition in found if condition is not None]


def finding_alerts(findings: Mapping[str, list[dict]]) -> list[AlertCondition]:
    """An alert per process finding (rows of `GET /v1/views/process-findings`), per scope (dealer, center):
    the finding's step or reason in its kind, the request ids behind it. Value and threshold: the median and
    its target (slow_handoff), the median and the peers' (slower_than_peers), else the count and 0. A
    dealer-less request has no dealer to alert."""
    found = []
    for scope, rows in sorted(findings.items()):
        for row in rows:
            if scope == "dealer" and row["key"] == DIRECT:
                continue
            kind = AlertKind(row["kind"])
            if kind == AlertKind.slow_handoff:
                value, threshold = row["median_minutes"], row["target_minutes"]
            elif kind == AlertKind.slower_than_peers:
                value, threshold = row["median_minutes"], row["peer_median_minutes"]
            else:
                value, threshold = row["count"], 0
            found.append(
                AlertCondition(
                    kind,
                    scope,
                    row["key"],
                    Fraction(str(value)),
                    Fraction(str(threshold)),
                    f"{scope} {row['key']}: {row['detail']}",
                    subject=row.get("step") if kind != AlertKind.repeat_visits else row["reason"],
                    request_ids=tuple(row["request_ids"]),
                )
            )
    return found
