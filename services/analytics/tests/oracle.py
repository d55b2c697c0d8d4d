"""An independent oracle for the scenario test: the contract's Definitions computed directly from what the
test made happen (cases with their step times), with none of analytics' code — `statistics.median`, ceil of
an exact 0.9·n, and Decimal's ROUND_HALF_UP for "half away from zero"."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction


@dataclass
class Job:
    assignments: list[tuple[float, str, str]]  # (minutes after received, center, technician)
    arrivals: list[float] = field(default_factory=list)
    completions: list[tuple[float, bool]] = field(default_factory=list)
    breaches: list[tuple[str, bool]] = field(default_factory=list)  # (kind, withdrawn later)
    revisits: list[tuple[float, int, int | None]] = field(default_factory=list)  # (minutes, satisfaction, nps)
    complaints_naming_the_job: int = 0


@dataclass
class Case:
    dealer: str | None
    region: str
    line: str
    received: datetime
    triage: tuple[float, str] | None = None  # (minutes, mode)
    escalate: float | None = None
    cancel: float | None = None
    complaints_naming_the_request: int = 0
    job: Job | None = None
    request_id: str = ""
    job_id: str = ""

    def at(self, minutes: float) -> datetime:
        return self.received + timedelta(minutes=minutes)

    @property
    def resolved(self) -> datetime | None:
        if self.triage and self.triage[1] == "phone":
            return self.at(self.triage[0])
        fixed = [m for m, ok in (self.job.completions if self.job else []) if ok]
        return self.at(min(fixed)) if fixed else None

    @property
    def worker(self) -> tuple[str, str] | None:
        """(center, technician) assigned when the job was first completed."""
        if not self.job or not self.job.completions:
            return None
        first = min(m for m, _ in self.job.completions)
        _, center, tech = max((a for a in self.job.assignments if a[0] <= first), key=lambda a: a[0])
        return center, tech

    def key(self, group_by: str) -> str | None:
        worker = self.worker
        return {
            "dealer": self.dealer or "direct",
            "region": self.region,
            "product_line": self.line,
            "center": worker[0] if worker else None,
            "technician": worker[1] if worker else None,
            "day": self.received.strftime("%Y-%m-%d"),
            "month": self.received.strftime("%Y-%m"),
            "all": "all",
        }[group_by]


def r1(value) -> float | None:
    if value is None:
        return None
    value = Fraction(value)
    return float((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.1"), ROUND_HALF_UP))


def pct(part, whole):
    return r1(Fraction(100 * part, whole)) if whole else None


def med(values):
    return r1(statistics.median(values)) if values else None


def p90(values):
    return r1(sorted(values)[math.ceil(Fraction(9, 10) * len(values)) - 1]) if values else None


def _minutes(later: datetime | None, earlier: datetime) -> Fraction | None:
    if later is None:
        return None
    delta = later - earlier
    return Fraction(delta.days * 86400 * 10**6 + delta.seconds * 10**6 + delta.microseconds, 60 * 10**6)


def throughput(cases: list[Case], start: datetime, end: datetime, group_by: str) -> dict[str, dict]:
    def inside(t):
        return t is not None and start <= t < end

    def open_at_end(c):
        closed = [t for t in (c.resolved, c.at(c.cancel) if c.cancel is not None else None) if t is not None]
        return c.received < end and not any(t < end for t in closed)

    rows = {}
    for key in {c.key(group_by) for c in cases} - {None}:
        group = [c for c in cases if c.key(group_by) == key]
        cohort = [c for c in group if inside(c.received)]
        row = {
            "key": key,
            "received": len(cohort),
            "resolved": sum(inside(c.resolved) for c in group),
            "backlog": sum(open_at_end(c) for c in group),
        }
        if not (row["received"] or row["resolved"] or row["backlog"]):
            continue
        triaged = [c for c in cohort if c.triage]
        first_assign = [
            _minutes(c.at(min(a[0] for a in c.job.assignments)), c.received)
            for c in cohort
            if c.job and c.job.assignments
        ]
        first_arrive = [_minutes(c.at(min(c.job.arrivals)), c.received) for c in cohort if c.job and c.job.arrivals]
        to_resolve = [_minutes(c.resolved, c.received) for c in cohort if c.resolved]
        done = [c.job for c in cohort if c.job and c.job.completions]
        row.update(
            {
                "phone_resolved_pct": pct(sum(c.triage[1] == "phone" for c in triaged), len(triaged)),
                "escalated_pct": pct(sum(c.escalate is not None for c in cohort), len(cohort)),
                "median_minutes_to_triage": med([Fraction(c.triage[0]) for c in triaged]),
                "median_minutes_to_assign": med(first_assign),
                "p90_minutes_to_assign": p90(first_assign),
                "median_minutes_to_arrive": med(first_arrive),
                "p90_minutes_to_arrive": p90(first_arrive),
                "median_minutes_to_resolve": med(to_resolve),
                "p90_minutes_to_resolve": p90(to_resolve),
                "first_time_fix_pct": pct(sum(min(j.completions)[1] for j in done), len(done)),
                "sla_met_pct": pct(sum(all(w for _, w in j.breaches) for j in done), len(done)),
                "complaint_rate_pct": pct(
                    sum(
                        c.complaints_naming_the_request + (c.job.complaints_naming_the_job if c.job else 0)
                        for c in cohort
                    ),
                    len(cohort),
                ),
            }
        )
        rows[key] = row
    return rows


def _revisits(cases: list[Case], start: datetime, end: datetime, group_by: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for c in cases:
        for minutes, score, nps in c.job.revisits if c.job else []:
            at = c.at(minutes)
            if not start <= at < end:
                continue
            key = (
                at.strftime({"day": "%Y-%m-%d", "month": "%Y-%m"}[group_by])
                if group_by in ("day", "month")
                else c.key(group_by)
            )
            if key is not None:
                found.setdefault(key, []).append((score, nps))
    return found


def satisfaction(cases: list[Case], start: datetime, end: datetime, group_by: str) -> dict[str, dict]:
    rows = {}
    for key, answers in _revisits(cases, start, end, group_by).items():
        scores = [s for s, _ in answers]
        rated = [n for _, n in answers if n is not None]
        avg = Fraction(sum(scores), len(scores))
        rows[key] = {
            "key": key,
            "responses": len(scores),
            "avg_score": r1(avg),
            "csat_pct": pct(sum(s >= 4 for s in scores), len(scores)),
            "csi": r1(avg * 20),
            "nps": r1(Fraction(100 * (sum(n >= 9 for n in rated) - sum(n <= 6 for n in rated)), len(rated)))
            if rated
            else None,
            "low_scores": sum(s <= 2 for s in scores),
        }
    return rows


def scorecard(cases: list[Case], start: datetime, end: datetime, group_by: str) -> dict[str, dict]:
    rows = {}
    answers = _revisits(cases, start, end, group_by)
    cohorts: dict[str, list[Case]] = {}
    for c in cases:
        if start <= c.received < end and c.key(group_by) is not None:
            cohorts.setdefault(c.key(group_by), []).append(c)
    for key in cohorts.keys() | answers.keys():
        done = [c.job for c in cohorts.get(key, []) if c.job and c.job.completions]
        sla = Fraction(100 * sum(all(w for _, w in j.breaches) for j in done), len(done)) if done else None
        ftf = Fraction(100 * sum(min(j.completions)[1] for j in done), len(done)) if done else None
        scores = [s for s, _ in answers.get(key, [])]
        csat = Fraction(100 * sum(s >= 4 for s in scores), len(scores)) if scores else None
        score = (
            None
            if sla is None and ftf is None and csat is None
            else Fraction(2, 10) * (sla or 0) + Fraction(3, 10) * (ftf or 0) + Fraction(5, 10) * (csat or 0)
        )
        rows[key] = {
            "key": key,
            "sla_met_pct": r1(sla),
            "first_time_fix_pct": r1(ftf),
            "csat_pct": r1(csat),
            "score": r1(score),
        }
    return rows


STEP_OWNERS = {
    "triage": "hotline",
    "assign": "dispatch",
    "accept": "technician",
    "travel": "technician",
    "repair": "technician",
    "follow_up": "hotline",
}


def _step_minutes(c: Case) -> dict[str, Fraction]:
    """Each hand-off of the case from its plan (the scenario has no acceptances: accept and travel are never
    measured)."""
    steps: dict[str, Fraction] = {}
    if c.triage:
        steps["triage"] = Fraction(c.triage[0])
    job = c.job
    if job is None:
        return steps
    if c.triage and c.triage[1] != "phone" and job.assignments:
        steps["assign"] = Fraction(min(a[0] for a in job.assignments)) - Fraction(c.triage[0])
    fixed = [m for m, ok in job.completions if ok]
    if job.arrivals and fixed:
        steps["repair"] = Fraction(min(fixed)) - Fraction(min(job.arrivals))
    if fixed and job.revisits:
        steps["follow_up"] = Fraction(min(m for m, _, _ in job.revisits)) - Fraction(min(fixed))
    return steps


def handoffs(cases: list[Case], start: datetime, end: datetime, group_by: str) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for key in {c.key(group_by) for c in cases} - {None}:
        cohort = [_step_minutes(c) for c in cases if c.key(group_by) == key and start <= c.received < end]
        totals = {s: sum((m[s] for m in cohort if s in m), Fraction(0)) for s in STEP_OWNERS}
        grand = sum(totals.values())
        for step, owner in STEP_OWNERS.items():
            values = [m[step] for m in cohort if step in m]
            if values:
                rows.setdefault(key, []).append(
                    {
                        "key": key,
                        "step": step,
                        "owner": owner,
                        "count": len(values),
                        "median_minutes": med(values),
                        "p90_minutes": p90(values),
                        "total_minutes": r1(totals[step]),
                        "share_pct": r1(totals[step] * 100 / grand) if grand else None,
                        "customer_minutes": 0.0,
                    }
                )
    return rows


def rework(cases: list[Case], start: datetime, end: datetime, group_by: str) -> dict[str, dict]:
    rows = {}
    for key in {c.key(group_by) for c in cases} - {None}:
        jobs = [c.job for c in cases if c.key(group_by) == key and start <= c.received < end and c.job]
        if not jobs:
            continue
        done = [j for j in jobs if j.completions]
        unfixed = sum(not ok for j in jobs for _, ok in j.completions)
        rows[key] = {
            "key": key,
            "jobs": len(jobs),
            "reassigned_pct": pct(sum(len(j.assignments) >= 2 for j in jobs), len(jobs)),
            "repeat_visit_pct": pct(sum(any(not ok for _, ok in j.completions) for j in done), len(done)),
            "repeat_visits": unfixed,
            "reasons": {"unspecified": unfixed} if unfixed else {},
            "reopened_complaints": 0,
        }
    return rows
