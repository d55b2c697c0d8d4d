"""The process view, defined as pure functions over stored events (design.md, analytics, "Process view"): where
time is lost between the hand-offs of a repair, how often work is redone, which paths requests take, and the
findings a service manager should act on. No I/O: this module is the reference that the engine's SQL must
equal, event for event.

Everything starts from `process_trails(events)`: one `ProcessTrail` per service request, folded from its
events in any order (duplicates by event id count once; every "first" is the minimum by business time), with
the request's throughput facts (`RequestFact`, so cohort and keys are exactly the throughput view's).

Customer-side time: a visit that failed because the customer was absent or the site was not ready (no water,
power or access) leaves the wait until the next arrival on the customer's side; it is part of the `repair`
step (whose meaning the contract fixes) and is shown beside it as `customer_minutes`."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from services.analytics.commerce import COMMERCE_STEP_OWNERS, RequestCommerce, request_commerce
from services.analytics.facts import RequestFact, fold_request
from services.analytics.metrics import (
    MICROS_PER_MINUTE,
    Window,
    median,
    median_without,
    p90,
    percentage,
    rounded,
    rounded_minutes,
)
from services.analytics.records import (
    CANCELLED,
    COMMERCE_ACTIVITIES,
    COMMERCE_TYPES,
    COMPLAINT_OPENED,
    COMPLAINT_REOPENED,
    ESCALATED,
    JOB_ACCEPTED,
    JOB_ARRIVED,
    JOB_ASSIGNED,
    JOB_COMPLETED,
    RECEIVED,
    REVISIT_DONE,
    TRIAGED,
    AnalyticsEvent,
)
from services.analytics.views import GroupBy, request_key

# The six hand-offs of the contract; `share_pct` of every step is relative to their total.
CONTRACT_STEPS: tuple[str, ...] = ("triage", "assign", "accept", "travel", "repair", "follow_up")
# Every step in chain order, with the party that owns the wait: the contract's six and paid service's and the
# parts' (`commerce`), which lie inside `assign` (quoting, the customer's decision) and `repair` (parts).
STEP_OWNERS: dict[str, str] = {
    "triage": "hotline",
    "quoting": COMMERCE_STEP_OWNERS["quoting"],
    "customer_decision": COMMERCE_STEP_OWNERS["customer_decision"],
    "assign": "dispatch",
    "accept": "technician",
    "travel": "technician",
    "parts_wait": COMMERCE_STEP_OWNERS["parts_wait"],
    "repair": "technician",
    "follow_up": "hotline",
}
STEPS: tuple[str, ...] = tuple(STEP_OWNERS)

UNSPECIFIED = "unspecified"  # a fixed=false completion recorded without a reason (or before reasons existed)
# Reasons of a failed visit that put the wait until the next visit on the customer's side.
CUSTOMER_SIDE_REASONS = frozenset({"customer_absent", "site_not_ready"})


# --- one request's trail -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assignment:
    time: int
    sequence: int
    technician_id: str | None
    center_id: str | None


@dataclass(frozen=True, slots=True)
class Completion:
    time: int
    sequence: int
    fixed: bool
    reason: str | None  # None when fixed; UNSPECIFIED when not fixed and not told why


@dataclass(frozen=True, slots=True)
class JobTrail:
    """One job's assignments, arrivals and completions, each in business order."""

    job_id: str
    assignments: tuple[Assignment, ...]
    arrivals: tuple[tuple[int, int], ...]  # (time, sequence)
    completions: tuple[Completion, ...]

    @property
    def reassigned(self) -> bool:
        return len(self.assignments) >= 2

    @property
    def ping_pong(self) -> bool:
        """Three or more assignments, or a technician given the job back after another had it (A→B→A)."""
        if len(self.assignments) >= 3:
            return True
        seen, previous = set(), None
        for a in self.assignments:
            if a.technician_id != previous:
                if a.technician_id in seen:
                    return True
                seen.add(a.technician_id)
                previous = a.technician_id
        return False

    @property
    def failed_visits(self) -> tuple[Completion, ...]:
        return tuple(c for c in self.completions if not c.fixed)

    def customer_waits(self, until: int | None = None) -> list[tuple[Completion, int]]:
        """(failed visit, µs until the next arrival) for each visit failed on the customer's side that was
        followed by another arrival (at or before `until`, when given)."""
        waits = []
        for completion in self.failed_visits:
            if completion.reason not in CUSTOMER_SIDE_REASONS:
                continue
            after = [a for a in self.arrivals if a > (completion.time, completion.sequence)]
            if after and (until is None or min(after)[0] <= until):
                waits.append((completion, min(after)[0] - completion.time))
        return waits


@dataclass(frozen=True, slots=True)
class ProcessTrail:
    """One service request as the process view sees it (times in µs since the epoch)."""

    request: RequestFact
    steps: Mapping[str, int]  # step → duration, only for steps whose start and end both exist
    path: tuple[str, ...]  # the activities in business order (see `ACTIVITY`)
    path_micros: int  # first to last activity of the path
    jobs: tuple[JobTrail, ...] = ()
    customer_micros: int = 0  # inside the repair step, waiting on the customer (0 unless repair counted)
    reopened_complaints: int = 0  # complaints about the request (or its jobs) reopened at least once
    commerce: RequestCommerce | None = None  # its quotes and part requests

    @property
    def request_id(self) -> str:
        return self.request.request_id


def _first_time(events: Iterable[AnalyticsEvent]) -> int | None:
    first = min(events, key=lambda e: e.chronological, default=None)
    return None if first is None else first.time


def _activity(event: AnalyticsEvent, assignments_before: int) -> str | None:
    """The name of an event's activity in a request's path (None: not a step of the path)."""
    match event.type:
        case "service_request.received":
            return "received"
        case "service_request.escalated":
            return "escalated"
        case "service_request.triaged":
            return "resolved_by_phone" if event.data.get("mode") == "phone" else "triaged"
        case "service_request.cancelled":
            return "cancelled"
        case "job.assigned":
            return "reassigned" if assignments_before else "assigned"
        case "job.accepted":
            return "accepted"
        case "job.arrived":
            return "arrived"
        case "job.completed":
            return "fixed" if event.data.get("fixed") else "not_fixed"
        case "revisit.done":
            return "follow_up"
    return COMMERCE_ACTIVITIES.get(event.type)


PATH_TYPES = frozenset(
    {RECEIVED, ESCALATED, TRIAGED, CANCELLED, JOB_ASSIGNED, JOB_ACCEPTED, JOB_ARRIVED, JOB_COMPLETED, REVISIT_DONE}
) | frozenset(COMMERCE_ACTIVITIES)


def _job_trail(job_id: str, events: Sequence[AnalyticsEvent]) -> JobTrail:
    ordered = sorted(events, key=lambda e: e.chronological)
    return JobTrail(
        job_id=job_id,
        assignments=tuple(
            Assignment(e.time, e.sequence, e.data.get("technician_id"), e.data.get("center_id"))
            for e in ordered
            if e.type == JOB_ASSIGNED
        ),
        arrivals=tuple((e.time, e.sequence) for e in ordered if e.type == JOB_ARRIVED),
        completions=tuple(
            Completion(
                e.time,
                e.sequence,
                bool(e.data.get("fixed")),
                None if e.data.get("fixed") else (e.data.get("reason") or UNSPECIFIED),
            )
            for e in ordered
            if e.type == JOB_COMPLETED
        ),
    )


def fold_trail(request_id: str, events: Iterable[AnalyticsEvent]) -> ProcessTrail:
    """The trail of one request from its events and its complaints' (in any order, duplicates once)."""
    unique = list({e.event_id: e for e in events}.values())
    fact, _ = fold_request(request_id, unique)
    own = [
        e
        for e in unique
        if e.request_id == request_id and not e.type.startswith("complaint.") and e.type not in COMMERCE_TYPES
    ]
    commerce = request_commerce(e for e in unique if e.request_id == request_id)
    by_type: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    job_events: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    for e in own:
        by_type[e.type].append(e)
        if e.job_id is not None:
            job_events[e.job_id].append(e)

    assigned, accepted, arrived = (_first_time(by_type[t]) for t in (JOB_ASSIGNED, JOB_ACCEPTED, JOB_ARRIVED))
    fixed = _first_time(e for e in by_type[JOB_COMPLETED] if e.data.get("fixed"))
    revisit = _first_time(by_type[REVISIT_DONE])
    field_triage = fact.triaged_at if not fact.phone_triaged else None
    bounds = {
        "triage": (fact.received_at, fact.triaged_at),
        "assign": (field_triage, assigned),
        "accept": (assigned, accepted),
        "travel": (accepted, arrived),
        "repair": (arrived, fixed),
        "follow_up": (fixed, revisit),
    }
    steps = {step: end - start for step, (start, end) in bounds.items() if start is not None and end is not None}
    steps.update(commerce.steps)

    jobs = tuple(_job_trail(job_id, evs) for job_id, evs in sorted(job_events.items()))
    customer = 0
    if "repair" in steps:
        customer = sum(wait for job in jobs for _, wait in job.customer_waits(fixed))

    path_events = sorted(
        (e for e in unique if e.request_id == request_id and e.type in PATH_TYPES), key=lambda e: e.chronological
    )
    path, assignments = [], 0
    for e in path_events:
        path.append(_activity(e, assignments))
        assignments += e.type == JOB_ASSIGNED
    path_micros = path_events[-1].time - path_events[0].time if path_events else 0

    complaint_ids = {_complaint_id(e) for e in unique if e.type == COMPLAINT_OPENED}
    reopened = {_complaint_id(e) for e in unique if e.type == COMPLAINT_REOPENED and _complaint_id(e) in complaint_ids}
    return ProcessTrail(
        request=fact,
        steps=steps,
        path=tuple(path),
        path_micros=path_micros,
        jobs=jobs,
        customer_micros=customer,
        reopened_complaints=len(reopened),
        commerce=commerce,
    )


def process_trails(events: Iterable[AnalyticsEvent]) -> list[ProcessTrail]:
    """Every request's trail. A complaint counts for the request it names, else for its job's request; a
    later complaint event (reopened…) that names neither follows its complaint's `complaint.opened`."""
    unique = list({e.event_id: e for e in events}.values())
    job_requests = {
        e.job_id: e.request_id
        for e in unique
        if e.job_id is not None and e.request_id is not None and not e.type.startswith("complaint.")
    }
    complaint_requests: dict[str, str] = {}
    for e in unique:
        if e.type == COMPLAINT_OPENED:
            owner = e.request_id or job_requests.get(e.job_id)
            if owner is not None:
                complaint_requests[_complaint_id(e)] = owner
    grouped: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    for e in unique:
        if e.type.startswith("complaint."):
            owner = e.request_id or job_requests.get(e.job_id) or complaint_requests.get(_complaint_id(e))
            if owner is not None:
                grouped[owner].append(e)
        elif e.request_id is not None:
            grouped[e.request_id].append(e)
    return [fold_trail(request_id, evs) for request_id, evs in sorted(grouped.items())]


def _complaint_id(event: AnalyticsEvent) -> str | None:
    """A complaint event's complaint: from the folded fields, else from the stored payload (a type the facts
    do not fold, such as `complaint.reopened`, keeps only its payload)."""
    if event.data.get("complaint_id"):
        return event.data["complaint_id"]
    payload = json.loads(event.payload) if isinstance(event.payload, str) else (event.payload or {})
    return payload.get("complaint_id")


def recorded_by(events: Iterable[AnalyticsEvent], as_of: int | None) -> Iterable[AnalyticsEvent]:
    """The events as they stood at `as_of` (µs): only those recorded by then."""
    return events if as_of is None else (e for e in events if e.recorded_at <= as_of)


# --- grouping ------------------------------------------------------------------------------------------


def cohort_by_key(trails: Iterable[ProcessTrail], window: Window, group_by: GroupBy) -> dict[str, list[ProcessTrail]]:
    """The window's cohort (requests received in it) by the throughput view's key, keys sorted."""
    groups: dict[str, list[ProcessTrail]] = defaultdict(list)
    for trail in trails:
        if trail.request.received_at in window:
            key = request_key(trail.request, group_by)
            if key is not None:
                groups[key].append(trail)
    return dict(sorted(groups.items()))


# --- handoffs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepStats:
    """Exact statistics of one step over a group of requests."""

    durations: tuple[int, ...]
    request_ids: tuple[str, ...]
    customer_micros: int = 0

    @property
    def count(self) -> int:
        return len(self.durations)

    @property
    def total(self) -> int:
        return sum(self.durations)

    @property
    def median(self) -> Fraction | None:
        return median(self.durations)

    @property
    def p90(self) -> Fraction | None:
        return p90(self.durations)


def step_stats(trails: Sequence[ProcessTrail]) -> dict[str, StepStats]:
    result = {}
    for step in STEPS:
        measured = [t for t in trails if step in t.steps]
        result[step] = StepStats(
            tuple(t.steps[step] for t in measured),
            tuple(t.request_id for t in measured),
            sum(t.customer_micros for t in measured) if step == "repair" else 0,
        )
    return result


def handoff_rows(trails: Iterable[ProcessTrail], window: Window, group_by: GroupBy) -> list[dict]:
    """Rows of `GET /v1/views/handoffs`: per key, one row per step measured at least once, in chain order.

    Beyond the contract's fields each row carries `customer_minutes`: the part of `total_minutes` spent
    waiting on the customer (only `repair` has any). `share_pct` is relative to the six contract steps' total
    for every step, the added ones too (they lie inside `assign` and `repair`)."""
    rows = []
    for key, group in cohort_by_key(trails, window, group_by).items():
        stats = step_stats(group)
        grand = sum(stats[step].total for step in CONTRACT_STEPS)
        for step, s in stats.items():
            if s.count == 0:
                continue
            rows.append(
                {
                    "key": key,
                    "step": step,
                    "owner": STEP_OWNERS[step],
                    "count": s.count,
                    "median_minutes": rounded_minutes(s.median),
                    "p90_minutes": rounded_minutes(s.p90),
                    "total_minutes": rounded_minutes(s.total),
                    "share_pct": rounded(percentage(s.total, grand)),
                    "customer_minutes": rounded_minutes(s.customer_micros),
                }
            )
    return rows


# --- rework --------------------------------------------------------------------------------------------


def rework_rows(trails: Iterable[ProcessTrail], window: Window, group_by: GroupBy) -> list[dict]:
    """Rows of `GET /v1/views/rework`, over the jobs of each key's cohort (keys with at least one job).

    `repeat_visits` counts the completions with fixed=false (each one calls for another visit); `reasons`
    splits them by reason; `reopened_complaints` counts the cohort's complaints reopened at least once."""
    rows = []
    for key, group in cohort_by_key(trails, window, group_by).items():
        jobs = [job for t in group for job in t.jobs]
        if not jobs:
            continue
        completed = [job for job in jobs if job.completions]
        reasons = Counter(c.reason for job in jobs for c in job.failed_visits)
        rows.append(
            {
                "key": key,
                "jobs": len(jobs),
                "reassigned_pct": rounded(percentage(sum(job.reassigned for job in jobs), len(jobs))),
                "repeat_visit_pct": rounded(
                    percentage(sum(bool(job.failed_visits) for job in completed), len(completed))
                ),
                "repeat_visits": sum(reasons.values()),
                "reasons": dict(sorted(reasons.items())),
                "reopened_complaints": sum(t.reopened_complaints for t in group),
            }
        )
    return rows


# --- variants ------------------------------------------------------------------------------------------


def variant_rows(
    trails: Iterable[ProcessTrail], window: Window, group_by: GroupBy, request_id_limit: int = 20
) -> list[dict]:
    """The paths the cohort's requests took, per key: how many took each (and their share of the key's
    cohort), and how long from the first to the last step (median, p90). Most frequent first; the request
    ids behind each path, up to `request_id_limit` (sorted)."""
    rows = []
    for key, group in cohort_by_key(trails, window, group_by).items():
        paths: dict[tuple[str, ...], list[ProcessTrail]] = defaultdict(list)
        for trail in group:
            paths[trail.path].append(trail)
        for path, took in sorted(paths.items(), key=lambda item: (-len(item[1]), item[0])):
            durations = [t.path_micros for t in took]
            rows.append(
                {
                    "key": key,
                    "path": list(path),
                    "requests": len(took),
                    "share_pct": rounded(percentage(len(took), len(group))),
                    "median_minutes": rounded_minutes(median(durations)),
                    "p90_minutes": rounded_minutes(p90(durations)),
                    "request_ids": sorted(t.request_id for t in took)[:request_id_limit],
                }
            )
    return rows


# --- findings ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingRules:
    """When a number becomes a finding.

    - `handoff_targets` (`HANDOFF_TARGETS`): step → minutes; a key whose median for the step exceeds the
      target is a `slow_handoff` (the requests behind it: those over the target).
    - Slower than the others (`slower_than_peers`): a key whose median for a step is at least `peer_factor`
      times the median of all other keys' requests pooled, and at least `peer_margin_minutes` more, with
      `peer_min_requests` measured requests on each side (the requests behind it: the key's over
      `peer_factor` × the peers' median).
    - `ping_pong`: jobs with three or more assignments or a technician given the job back (A→B→A).
    - `repeat_visits`: per reason, the visits that did not fix the unit; those failed on the customer's side
      say how long the customer kept us waiting."""

    handoff_targets: Mapping[str, float] = field(default_factory=lambda: {"triage": 15})
    peer_factor: Fraction = Fraction(2)
    peer_margin_minutes: int = 10
    peer_min_requests: int = 5
    request_id_limit: int = 100


KIND_ORDER = ("slow_handoff", "slower_than_peers", "ping_pong", "repeat_visits")


def _ids(ids: Iterable[str], limit: int) -> list[str]:
    return sorted(set(ids))[:limit]


def _finding(kind: str, key: str, count: int, ids: Iterable[str], rules: FindingRules, detail: str, **extra) -> dict:
    all_ids = set(ids)
    return {
        "kind": kind,
        "key": key,
        "step": None,
        "owner": None,
        "reason": None,
        "side": "ours",
        **extra,
        "count": count,
        "requests": len(all_ids),
        "detail": detail,
        "request_ids": _ids(all_ids, rules.request_id_limit),
    }


def finding_rows(
    trails: Iterable[ProcessTrail], window: Window, group_by: GroupBy, rules: FindingRules = FindingRules()
) -> list[dict]:
    """Findings over the window's cohort by key (see `FindingRules`), each with the requests behind it:
    `request_ids` (sorted, at most `rules.request_id_limit`) and `requests` (how many in all)."""
    groups = cohort_by_key(trails, window, group_by)
    stats = {key: step_stats(group) for key, group in groups.items()}
    everyone = {step: sorted(d for s in stats.values() for d in s[step].durations) for step in STEPS}
    found: list[dict] = []
    for key, group in groups.items():
        for step, target in rules.handoff_targets.items():
            s = stats[key].get(step)
            if s is None or s.count == 0 or s.median <= Fraction(target) * MICROS_PER_MINUTE:
                continue
            slow = [rid for rid, d in zip(s.request_ids, s.durations) if d > Fraction(target) * MICROS_PER_MINUTE]
            found.append(
                _finding(
                    "slow_handoff",
                    key,
                    s.count,
                    slow,
                    rules,
                    f"{step} takes {rounded_minutes(s.median)} min (median) against a target of {target} min",
                    step=step,
                    owner=STEP_OWNERS[step],
                    median_minutes=rounded_minutes(s.median),
                    target_minutes=target,
                )
            )
        if group_by not in (GroupBy.all, GroupBy.day, GroupBy.month):
            found += _slower_than_peers(key, stats, rules, everyone)
        bouncing = [(t.request_id, job) for t in group for job in t.jobs if job.ping_pong]
        if bouncing:
            found.append(
                _finding(
                    "ping_pong",
                    key,
                    len(bouncing),
                    (rid for rid, _ in bouncing),
                    rules,
                    f"{len(bouncing)} job(s) bounced between technicians (3+ assignments or A→B→A)",
                    owner="dispatch",
                )
            )
        found += _repeat_visits(key, group, rules)
    return sorted(found, key=lambda f: (KIND_ORDER.index(f["kind"]), f["key"], f["step"] or "", f["reason"] or ""))


def _slower_than_peers(
    key: str, stats: Mapping[str, Mapping[str, StepStats]], rules: FindingRules, everyone: Mapping[str, Sequence[int]]
) -> list[dict]:
    found = []
    for step in STEPS:
        mine = stats[key][step]
        peers = len(everyone[step]) - mine.count
        if mine.count < rules.peer_min_requests or peers < rules.peer_min_requests:
            continue
        peer_median = median_without(everyone[step], sorted(mine.durations))
        bar = rules.peer_factor * peer_median
        if mine.median < bar or mine.median - peer_median < rules.peer_margin_minutes * MICROS_PER_MINUTE:
            continue
        slow = [rid for rid, d in zip(mine.request_ids, mine.durations) if d > bar]
        found.append(
            _finding(
                "slower_than_peers",
                key,
                mine.count,
                slow,
                rules,
                f"{step} takes {rounded_minutes(mine.median)} min (median) against {rounded_minutes(peer_median)} min "
                f"for the others",
                step=step,
                owner=STEP_OWNERS[step],
                median_minutes=rounded_minutes(mine.median),
                peer_median_minutes=rounded_minutes(peer_median),
            )
        )
    return found


def _repeat_visits(key: str, group: Sequence[ProcessTrail], rules: FindingRules) -> list[dict]:
    by_reason: dict[str, list[str]] = defaultdict(list)
    waits: dict[str, int] = defaultdict(int)
    for trail in group:
        for job in trail.jobs:
            for completion in job.failed_visits:
                by_reason[completion.reason].append(trail.request_id)
            for completion, wait in job.customer_waits():
                waits[completion.reason] += wait
    return [
        repeat_visit_finding(key, len(ids), ids, rules, reason, reason in CUSTOMER_SIDE_REASONS, waits[reason])
        for reason, ids in sorted(by_reason.items())
    ]


def repeat_visit_finding(
    key: str,
    visits: int,
    ids: Iterable[str],
    rules: FindingRules,
    reason: str,
    customer: bool,
    waited_micros: int,
) -> dict:
    """The `repeat_visits` finding of one failure reason (the SQL view's row too); a customer-side reason also
    says how long the customer kept the next visits waiting (`waited_micros`)."""
    detail = f"{visits} visit(s) did not fix the unit: {reason}"
    if customer:
        detail += f"; {rounded_minutes(waited_micros)} min waiting on the customer until the next visit"
    return _finding(
        "repeat_visits",
        key,
        visits,
        ids,
        rules,
        detail,
        reason=reason,
        owner="customer" if customer else "technician",
        side="customer" if customer else "ours",
        customer_minutes=rounded_minutes(waited_micros) if customer else None,
    )
