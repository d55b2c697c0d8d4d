"""The contract's views computed from facts, with no I/O: throughput, satisfaction and scorecard rows per
group, plus the daily trend and the time-to-X distributions the dashboard draws.

Each view first gathers exact statistics per key (`*Stats`, unrounded), then presents rows rounded half away
from zero; alerts read the exact statistics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

from services.analytics.facts import RequestFact, RevisitFact
from services.analytics.metrics import (
    MICROS_PER_DAY,
    MICROS_PER_MINUTE,
    Window,
    day_key,
    mean,
    median,
    month_key,
    p90,
    percentage,
    rounded,
    rounded_minutes,
    weighted_score,
)


class GroupBy(StrEnum):
    dealer = "dealer"
    center = "center"
    technician = "technician"
    region = "region"
    product_line = "product_line"
    day = "day"
    month = "month"
    all = "all"


def _key(item: RequestFact | RevisitFact, group_by: GroupBy, when: int | None) -> str | None:
    """The group of a request or revisit: day and month of `when`, the rest from its attributes (None — left
    out — when it has none, e.g. the technician of a request whose job was never completed)."""
    match group_by:
        case GroupBy.day:
            return day_key(when) if when is not None else None
        case GroupBy.month:
            return month_key(when) if when is not None else None
        case GroupBy.dealer:
            return item.dealer_key
        case GroupBy.center:
            return item.center_id
        case GroupBy.technician:
            return item.technician_id
        case GroupBy.region:
            return item.region
        case GroupBy.product_line:
            return item.product_line
    return "all"


def request_key(fact: RequestFact, group_by: GroupBy) -> str | None:
    """A request's key: day and month of its received time; center and technician of its first completion."""
    return _key(fact, group_by, fact.received_at)


def revisit_key(revisit: RevisitFact, group_by: GroupBy) -> str | None:
    """A revisit's key: day and month of its own time; the rest through its request and job."""
    return _key(revisit, group_by, revisit.time)


def _grouped(items: Iterable, key: Callable[[Any], str | None]) -> dict[str, list]:
    groups: dict[str, list] = defaultdict(list)
    for item in items:
        k = key(item)
        if k is not None:
            groups[k].append(item)
    return groups


# --- throughput ------------------------------------------------------------------------------------------


def _since_received(cohort: Sequence[RequestFact], step: Callable[[RequestFact], int | None]) -> list[int]:
    return [step(f) - f.received_at for f in cohort if step(f) is not None]


@dataclass(frozen=True)
class JobStats:
    completed: int
    first_fixed: int
    sla_met: int

    @classmethod
    def of(cls, cohort: Sequence[RequestFact]) -> JobStats:
        return cls(
            sum(f.jobs_completed for f in cohort),
            sum(f.jobs_first_fixed for f in cohort),
            sum(f.jobs_sla_met for f in cohort),
        )

    @property
    def first_time_fix_pct(self) -> Fraction | None:
        return percentage(self.first_fixed, self.completed)

    @property
    def sla_met_pct(self) -> Fraction | None:
        return percentage(self.sla_met, self.completed)


def throughput_rows(requests: Iterable[RequestFact], window: Window, group_by: GroupBy) -> list[dict]:
    """Rows of `GET /v1/views/throughput` (design.md, Definitions)."""
    relevant = (f for f in requests if f.received_at in window or f.resolved_at in window or f.open_at(window.end))
    rows = []
    for key, facts in sorted(_grouped(relevant, lambda f: request_key(f, group_by)).items()):
        cohort = [f for f in facts if f.received_at in window]
        triaged = [f for f in cohort if f.triaged_at is not None]
        to_assign = _since_received(cohort, lambda f: f.first_assigned_at)
        to_arrive = _since_received(cohort, lambda f: f.first_arrived_at)
        to_resolve = _since_received(cohort, lambda f: f.resolved_at)
        jobs = JobStats.of(cohort)
        rows.append(
            {
                "key": key,
                "received": len(cohort),
                "resolved": sum(1 for f in facts if f.resolved_at in window),
                "backlog": sum(1 for f in facts if f.open_at(window.end)),
                "phone_resolved_pct": rounded(percentage(sum(f.phone_triaged for f in triaged), len(triaged))),
                "escalated_pct": rounded(percentage(sum(f.escalated for f in cohort), len(cohort))),
                "median_minutes_to_triage": rounded_minutes(median(_since_received(cohort, lambda f: f.triaged_at))),
                "median_minutes_to_assign": rounded_minutes(median(to_assign)),
                "p90_minutes_to_assign": rounded_minutes(p90(to_assign)),
                "median_minutes_to_arrive": rounded_minutes(median(to_arrive)),
                "p90_minutes_to_arrive": rounded_minutes(p90(to_arrive)),
                "median_minutes_to_resolve": rounded_minutes(median(to_resolve)),
                "p90_minutes_to_resolve": rounded_minutes(p90(to_resolve)),
                "first_time_fix_pct": rounded(jobs.first_time_fix_pct),
                "sla_met_pct": rounded(jobs.sla_met_pct),
                "complaint_rate_pct": rounded(percentage(sum(f.complaints for f in cohort), len(cohort))),
            }
        )
    return rows


# --- satisfaction ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SatisfactionStats:
    responses: int
    avg_score: Fraction | None
    csat_pct: Fraction | None
    nps: Fraction | None
    low_scores: int

    @classmethod
    def of(cls, revisits: Sequence[RevisitFact]) -> SatisfactionStats:
        scores = [r.satisfaction for r in revisits]
        rated = [r.nps for r in revisits if r.nps is not None]
        nps = None
        if rated:
            nps = percentage(sum(1 for n in rated if n >= 9), len(rated)) - percentage(
                sum(1 for n in rated if n <= 6), len(rated)
            )
        return cls(
            len(scores),
            mean(scores),
            percentage(sum(1 for s in scores if s >= 4), len(scores)),
            nps,
            sum(1 for s in scores if s <= 2),
        )

    @property
    def csi(self) -> Fraction | None:
        return None if self.avg_score is None else self.avg_score / 5 * 100


def satisfaction_by_key(
    revisits: Iterable[RevisitFact], window: Window, group_by: GroupBy
) -> dict[str, SatisfactionStats]:
    in_window = (r for r in revisits if r.time in window)
    return {
        key: SatisfactionStats.of(group)
        for key, group in _grouped(in_window, lambda r: revisit_key(r, group_by)).items()
    }


def satisfaction_rows(revisits: Iterable[RevisitFact], window: Window, group_by: GroupBy) -> list[dict]:
    """Rows of `GET /v1/views/satisfaction`: revisits by their own time."""
    return [
        {
            "key": key,
            "responses": s.responses,
            "avg_score": rounded(s.avg_score),
            "csat_pct": rounded(s.csat_pct),
            "csi": rounded(s.csi),
            "nps": rounded(s.nps),
            "low_scores": s.low_scores,
        }
        for key, s in sorted(satisfaction_by_key(revisits, window, group_by).items())
    ]


# --- scorecard -------------------------------------------------------------------------------------------


def jobs_by_key(requests: Iterable[RequestFact], window: Window, group_by: GroupBy) -> dict[str, JobStats]:
    """Job statistics of each key's cohort (requests received in the window)."""
    cohort = (f for f in requests if f.received_at in window)
    return {key: JobStats.of(group) for key, group in _grouped(cohort, lambda f: request_key(f, group_by)).items()}


def scorecard_rows(
    requests: Iterable[RequestFact], revisits: Iterable[RevisitFact], window: Window, group_by: GroupBy
) -> list[dict]:
    """Rows of `GET /v1/views/scorecard`; the score is weighed from the unrounded parts."""
    jobs = jobs_by_key(requests, window, group_by)
    satisfaction = satisfaction_by_key(revisits, window, group_by)
    rows = []
    for key in sorted(jobs.keys() | satisfaction.keys()):
        job = jobs.get(key)
        sla = job.sla_met_pct if job else None
        ftf = job.first_time_fix_pct if job else None
        csat = satisfaction[key].csat_pct if key in satisfaction else None
        rows.append(scorecard_row(key, sla, ftf, csat))
    return rows


def scorecard_row(key: str, sla: Fraction | None, ftf: Fraction | None, csat: Fraction | None) -> dict:
    """A scorecard row (the SQL view's too): the parts rounded, the score weighed from the unrounded ones."""
    return {
        "key": key,
        "sla_met_pct": rounded(sla),
        "first_time_fix_pct": rounded(ftf),
        "csat_pct": rounded(csat),
        "score": rounded(weighted_score(sla, ftf, csat)),
    }


# --- dashboard series ------------------------------------------------------------------------------------


def trend_rows(requests: Iterable[RequestFact], window: Window) -> list[dict]:
    """Per UTC day of the window: requests received that day, resolved that day, and the backlog at its end."""
    days = window.days()
    received: dict[int, int] = defaultdict(int)
    resolved: dict[int, int] = defaultdict(int)
    change: dict[int, int] = defaultdict(int)  # backlog at a day's end changes by these, day by day
    for f in requests:
        if f.received_at is None:
            continue
        start = f.received_at // MICROS_PER_DAY * MICROS_PER_DAY
        received[start] += 1
        if f.resolved_at is not None:
            resolved[f.resolved_at // MICROS_PER_DAY * MICROS_PER_DAY] += 1
        closed = min((t for t in (f.resolved_at, f.cancelled_at) if t is not None), default=None)
        # Open at the end of day d (instant d+1day) iff received < d+1day <= closed.
        change[start] += 1
        if closed is not None:
            change[max(closed // MICROS_PER_DAY * MICROS_PER_DAY, start)] -= 1
    rows, backlog, pending = [], 0, sorted(change.items())
    i = 0
    for day in days:
        while i < len(pending) and pending[i][0] <= day:
            backlog += pending[i][1]
            i += 1
        rows.append(
            {
                "day": day_key(day),
                "received": received.get(day, 0),
                "resolved": resolved.get(day, 0),
                "backlog": backlog,
            }
        )
    return rows


DURATION_BUCKETS: tuple[tuple[str, int], ...] = (
    ("<15m", 15),
    ("15m-1h", 60),
    ("1-4h", 240),
    ("4-8h", 480),
    ("8-24h", 1440),
    ("1-3d", 4320),
    ("3-7d", 10080),
    (">7d", 0),
)
STEPS: dict[str, Callable[[RequestFact], int | None]] = {
    "triage": lambda f: f.triaged_at,
    "assign": lambda f: f.first_assigned_at,
    "arrive": lambda f: f.first_arrived_at,
    "resolve": lambda f: f.resolved_at,
}


def duration_histograms(requests: Iterable[RequestFact], window: Window) -> dict[str, dict]:
    """For each step, how long the window's cohort took from received to it: counts per bucket, median, p90."""
    cohort = [f for f in requests if f.received_at in window]
    result = {}
    for step, at in STEPS.items():
        durations = _since_received(cohort, at)
        counts = [0] * len(DURATION_BUCKETS)
        for micros in durations:
            index = next(
                (i for i, (_, upper) in enumerate(DURATION_BUCKETS) if upper and micros < upper * MICROS_PER_MINUTE),
                len(DURATION_BUCKETS) - 1,
            )
            counts[index] += 1
        result[step] = {
            "count": len(durations),
            "median_minutes": rounded_minutes(median(durations)),
            "p90_minutes": rounded_minutes(p90(durations)),
            "buckets": [{"label": label, "count": n} for (label, _), n in zip(DURATION_BUCKETS, counts)],
        }
    return result
