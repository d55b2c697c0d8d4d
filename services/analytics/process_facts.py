"""The per-request facts the process view's SQL reads (design.md, analytics, "Process view"), folded with the
request's other facts (`facts.fold_request_full`) so that they are versioned with them and `as_of` stays a
predicate on the fact rows.

A second, independent statement of the definitions in `process.py` (the reference): the property tests
(`test_process_sql_equals_reference.py`) hold the SQL over these facts equal to the reference row by row.
Pure: no I/O, no imports of the engine."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from services.analytics.records import (
    CANCELLED,
    COMMERCE_ACTIVITIES,
    COMMERCE_TYPES,
    ESCALATED,
    JOB_ACCEPTED,
    JOB_ARRIVED,
    JOB_ASSIGNED,
    JOB_COMPLETED,
    RECEIVED,
    REVISIT_DONE,
    TRIAGED,
    UNSPECIFIED_REASON,
    AnalyticsEvent,
)

# Reasons of a failed visit that leave the wait until the next arrival on the customer's side.
CUSTOMER_SIDE = frozenset({"customer_absent", "site_not_ready"})
_PATH_TYPES = frozenset(
    {RECEIVED, ESCALATED, TRIAGED, CANCELLED, JOB_ASSIGNED, JOB_ACCEPTED, JOB_ARRIVED, JOB_COMPLETED, REVISIT_DONE}
) | frozenset(COMMERCE_ACTIVITIES)


# The path activity of each event type whose activity does not depend on the event's data (triage mode, an
# assignment's predecessor and a completion's outcome do: `_activity`); the live fold reads the same map.
PATH_ACTIVITIES = {
    RECEIVED: "received",
    ESCALATED: "escalated",
    CANCELLED: "cancelled",
    JOB_ACCEPTED: "accepted",
    JOB_ARRIVED: "arrived",
    REVISIT_DONE: "follow_up",
    **COMMERCE_ACTIVITIES,
}


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class ProcessFields:
    """What the process view needs of one request beyond its throughput facts (times in µs)."""

    first_fixed_at: int | None = None  # the first completion with fixed=true, over all the request's jobs
    repair_customer_micros: int = 0  # inside the repair step, waiting on the customer (0: repair not measured)
    path: str = "[]"  # JSON list of the activities in business order
    path_micros: int = 0  # first to last activity
    jobs_seen: int = 0  # distinct jobs among the request's events (a job known only by its follow-up counts)
    jobs_repeat_visited: int = 0  # jobs with at least one completion that did not fix the unit
    jobs_ping_pong: int = 0  # jobs assigned 3+ times or given back to a technician who had them (A→B→A)
    failed_visit_reasons: str = "{}"  # JSON reason → fixed=false completions
    customer_waits: str = "{}"  # JSON customer-side reason → µs until the next arrival (all such visits)


def _activity(event: AnalyticsEvent, assigned_before: bool) -> str:
    kind = event.type
    if kind == TRIAGED:
        return "resolved_by_phone" if event.data.get("mode") == "phone" else "triaged"
    if kind == JOB_ASSIGNED:
        return "reassigned" if assigned_before else "assigned"
    if kind == JOB_COMPLETED:
        return "fixed" if event.data.get("fixed") else "not_fixed"
    return PATH_ACTIVITIES[kind]


def bounces(technicians: list[str | None]) -> bool:
    if len(technicians) >= 3:
        return True
    # Two assignments: A→B→A needs three, so only three or more can bounce back; kept general all the same.
    runs = [t for i, t in enumerate(technicians) if i == 0 or technicians[i - 1] != t]
    return len(runs) != len(set(runs))


def process_fields(own: Iterable[AnalyticsEvent]) -> ProcessFields:
    """The process fields of a request from its own events (not its complaints), deduplicated by the caller.
    Quotes and part requests are on its path only (their jobs' counts are the repair chain's)."""
    events = sorted(own, key=lambda e: e.chronological)
    first: dict[str, int] = {}
    for e in events:
        first.setdefault(e.type, e.time)
    fixed_at = next((e.time for e in events if e.type == JOB_COMPLETED and e.data.get("fixed")), None)

    jobs: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    for e in events:
        if e.job_id is not None and e.type not in COMMERCE_TYPES:
            jobs[e.job_id].append(e)
    reasons: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    repair_customer = 0
    repeat_visited = ping_pong = 0
    for job_events in jobs.values():  # each already in business order
        failed = [e for e in job_events if e.type == JOB_COMPLETED and not e.data.get("fixed")]
        repeat_visited += bool(failed)
        ping_pong += bounces([e.data.get("technician_id") for e in job_events if e.type == JOB_ASSIGNED])
        for completion in failed:
            reason = completion.data.get("reason") or UNSPECIFIED_REASON
            reasons[reason] += 1
            if reason not in CUSTOMER_SIDE:
                continue
            after = (completion.time, completion.sequence)
            next_arrival = min(
                (e.time for e in job_events if e.type == JOB_ARRIVED and (e.time, e.sequence) > after), default=None
            )
            if next_arrival is None:
                continue
            waits[reason] += next_arrival - completion.time
            if fixed_at is not None and next_arrival <= fixed_at:
                repair_customer += next_arrival - completion.time
    if JOB_ARRIVED not in first or fixed_at is None:
        repair_customer = 0

    path_events = [e for e in events if e.type in _PATH_TYPES]
    path, assigned = [], False
    for e in path_events:
        path.append(_activity(e, assigned))
        assigned = assigned or e.type == JOB_ASSIGNED
    return ProcessFields(
        first_fixed_at=fixed_at,
        repair_customer_micros=repair_customer,
        path=_json(path),
        path_micros=path_events[-1].time - path_events[0].time if path_events else 0,
        jobs_seen=len(jobs),
        jobs_repeat_visited=repeat_visited,
        jobs_ping_pong=ping_pong,
        failed_visit_reasons=_json(dict(reasons)),
        customer_waits=_json(dict(waits)),
    )
