"""Folding stored events into the facts the views count, with no I/O.

A request's facts are a pure function of the set of its events, whatever order they arrived in: every
"first" is the minimum by business time, and the projection folds a request again from all its stored events
whenever more arrive. The facts as they stood at a past moment are the fold of the events recorded by then;
`fact_versions` folds each such moment once, when the events arrive, so that `as_of` is a predicate on stored
versions (each valid from one recorded time until the next) and never a refold at query time.

Three kinds of fact per request: the request itself (the time of every step, its keys, per-job counts), its
jobs and its revisits. `fold_all` over a set of events is the reference the SQL views are tested against."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from functools import cached_property

from services.analytics.commerce_facts import CommerceFields, commerce_fields
from services.analytics.process_facts import ProcessFields, process_fields
from services.analytics.records import (
    CANCELLED,
    COMMERCE_TYPES,
    COMPLAINT_OPENED,
    ESCALATED,
    HANDLED_TYPES,
    JOB_ACCEPTED,
    JOB_ARRIVED,
    JOB_ASSIGNED,
    JOB_COMPLETED,
    JOB_CREATED,
    RECEIVED,
    REVISIT_DONE,
    SLA_BREACH_WITHDRAWN,
    SLA_BREACHED,
    TRIAGED,
    UNSPECIFIED_REASON,
    AnalyticsEvent,
)

DIRECT = "direct"  # the dealer key of requests opened without a dealer


@dataclass(frozen=True, slots=True)
class RequestFact:
    """One service request as the throughput and scorecard views see it (times in µs since the epoch)."""

    request_id: str
    received_at: int | None
    dealer_key: str | None
    region: str | None
    product_line: str | None
    triaged_at: int | None = None
    phone_triaged: bool = False
    escalated: bool = False
    cancelled_at: int | None = None
    first_assigned_at: int | None = None
    first_arrived_at: int | None = None
    resolved_at: int | None = None
    center_id: str | None = None
    technician_id: str | None = None
    jobs_completed: int = 0
    jobs_first_fixed: int = 0
    jobs_sla_met: int = 0
    complaints: int = 0
    # The process view's steps and rework (README: the fact schema).
    dealer_id: str | None = None  # the real dealer id (None: a direct request); dealer_key is its display key
    triage_mode: str | None = None
    priority: str | None = None
    escalated_at: int | None = None
    first_accepted_at: int | None = None
    first_revisit_at: int | None = None
    jobs: int = 0
    jobs_reassigned: int = 0
    repeat_visits: int = 0
    # The process view's SQL (process_facts.ProcessFields, folded with the rest so they are versioned alike).
    first_fixed_at: int | None = None
    repair_customer_micros: int = 0
    path: str = "[]"
    path_micros: int = 0
    jobs_seen: int = 0
    jobs_repeat_visited: int = 0
    jobs_ping_pong: int = 0
    failed_visit_reasons: str = "{}"
    customer_waits: str = "{}"
    # Paid service and waiting for parts (commerce_facts.CommerceFields, folded from the same events).
    quote_required_at: int | None = None
    quote_issued_at: int | None = None
    quote_decided_at: int | None = None
    quotes_issued: int = 0
    quotes_accepted: int = 0
    quotes_declined: int = 0
    quotes_expired: int = 0
    revenue_cents: int = 0
    currency: str | None = None
    parts_wait_from: int | None = None
    parts_wait_to: int | None = None
    part_requests: str = "[]"

    def open_at(self, instant: int) -> bool:
        """In the backlog at `instant`: received before it, neither resolved nor cancelled before it."""
        return (
            self.received_at is not None
            and self.received_at < instant
            and not (self.resolved_at is not None and self.resolved_at < instant)
            and not (self.cancelled_at is not None and self.cancelled_at < instant)
        )


@dataclass(frozen=True, slots=True)
class RevisitFact:
    """One follow-up contact, with the keys of its request and job."""

    event_id: str
    request_id: str
    job_id: str
    time: int
    satisfaction: int
    nps: int | None
    dealer_key: str | None
    region: str | None
    product_line: str | None
    center_id: str | None
    technician_id: str | None
    dealer_id: str | None = None


@dataclass(frozen=True, slots=True)
class JobFact:
    """One job: its steps, how often it was assigned and completed, why visits did not fix the unit."""

    job_id: str
    request_id: str
    created_at: int | None
    assignments: int
    first_assigned_at: int | None
    first_accepted_at: int | None
    first_arrived_at: int | None
    first_completed_at: int | None
    first_fixed: bool | None  # was the first completion fixed (None: not completed yet)
    fixed_at: int | None
    completions: int
    unfixed_completions: int
    reasons: tuple[tuple[str, int], ...]  # (reason, fixed=false completions), sorted by reason
    sla_breached: bool
    center_id: str | None  # assigned at the first completion
    technician_id: str | None


@dataclass
class _Job:
    events: list[AnalyticsEvent] = field(default_factory=list)

    def of(self, event_type: str) -> list[AnalyticsEvent]:
        return sorted((e for e in self.events if e.type == event_type), key=lambda e: e.chronological)

    @cached_property
    def first_completion(self) -> AnalyticsEvent | None:
        """(Read once all of the job's events are in.)"""
        return _first(e for e in self.events if e.type == JOB_COMPLETED)

    def worker_at_first_completion(self) -> tuple[str | None, str | None]:
        """(center, technician) assigned when the job was first completed: the latest assignment at or before
        that completion; without one, the completing technician (center unknown)."""
        completion = self.first_completion
        if completion is None:
            return None, None
        assignments = [a for a in self.of(JOB_ASSIGNED) if a.chronological <= completion.chronological]
        if assignments:
            latest = assignments[-1].data
            return latest.get("center_id"), latest.get("technician_id")
        return None, completion.data.get("technician_id")

    def breached(self) -> bool:
        """A breach counts unless withdrawn: per SLA kind, the source's latest decision wins (a late-synced step
        that disproves the timer's breach is recorded as a withdrawal after it)."""
        latest: dict[str, AnalyticsEvent] = {}
        for event in self.events:
            if event.type in (SLA_BREACHED, SLA_BREACH_WITHDRAWN):
                kind = event.data.get("kind", "")
                if kind not in latest or event.as_recorded > latest[kind].as_recorded:
                    latest[kind] = event
        return any(e.type == SLA_BREACHED for e in latest.values())


def _process_fields(mine: list[AnalyticsEvent]) -> dict:
    own = process_fields(e for e in mine if not e.type.startswith("complaint."))
    return {f.name: getattr(own, f.name) for f in fields(ProcessFields)}


_COMMERCE_NAMES = tuple(f.name for f in fields(CommerceFields))


def commerce_values(values: CommerceFields) -> dict:
    """The commerce fields as `RequestFact` keyword arguments."""
    return {name: getattr(values, name) for name in _COMMERCE_NAMES}


def _first(events: Iterable[AnalyticsEvent]) -> AnalyticsEvent | None:
    return min(events, key=lambda e: e.chronological, default=None)


def fold_request(request_id: str, events: Iterable[AnalyticsEvent]) -> tuple[RequestFact, list[RevisitFact]]:
    """The facts of one request from its events (and complaints linked to it through its jobs), in any order.

    Duplicates by event id count once."""
    fact, revisits, _ = fold_request_full(request_id, events)
    return fact, revisits


def fold_request_full(
    request_id: str, events: Iterable[AnalyticsEvent]
) -> tuple[RequestFact, list[RevisitFact], list[JobFact]]:
    """`fold_request`, with the request's job facts."""
    unique = {e.event_id: e for e in events}
    mine = [e for e in unique.values() if e.request_id == request_id or e.type == COMPLAINT_OPENED]
    by_type: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    jobs: dict[str, _Job] = defaultdict(_Job)
    for event in mine:
        if event.type == COMPLAINT_OPENED or event.type in COMMERCE_TYPES:  # quotes, part requests: apart
            continue
        by_type[event.type].append(event)
        if event.job_id is not None:
            jobs[event.job_id].events.append(event)

    received = _first(by_type[RECEIVED])
    origin = received or _first(by_type[JOB_CREATED])  # the job carries the same keys until the request arrives
    dealer_key = dealer_id = region = product_line = None
    if origin is not None:
        dealer_id = origin.data.get("dealer_id") or None
        dealer_key = dealer_id or DIRECT
        region, product_line = origin.data.get("region"), origin.data.get("product_line")

    triage = _first(by_type[TRIAGED])
    phone = triage is not None and triage.data.get("mode") == "phone"
    fixed_completion = _first(e for e in by_type[JOB_COMPLETED] if e.data.get("fixed"))
    resolutions = [
        t for t in (triage.time if phone else None, fixed_completion and fixed_completion.time) if t is not None
    ]

    completed_jobs = [job for job in jobs.values() if job.first_completion is not None]
    first_done = min(completed_jobs, key=lambda job: job.first_completion.chronological, default=None)
    center_id, technician_id = first_done.worker_at_first_completion() if first_done else (None, None)

    job_facts = [
        _job_fact(job_id, request_id, job)
        for job_id, job in sorted(jobs.items())
        if any(e.type != REVISIT_DONE for e in job.events)
    ]
    complaint_ids = {
        e.data.get("complaint_id") or e.event_id
        for e in mine
        if e.type == COMPLAINT_OPENED and (e.request_id == request_id or (e.request_id is None and e.job_id in jobs))
    }
    fact = RequestFact(
        request_id=request_id,
        received_at=received.time if received else None,
        dealer_key=dealer_key,
        region=region,
        product_line=product_line,
        triaged_at=triage.time if triage else None,
        phone_triaged=phone,
        escalated=bool(by_type[ESCALATED]),
        cancelled_at=min((e.time for e in by_type[CANCELLED]), default=None),
        first_assigned_at=min((e.time for e in by_type[JOB_ASSIGNED]), default=None),
        first_arrived_at=min((e.time for e in by_type[JOB_ARRIVED]), default=None),
        resolved_at=min(resolutions, default=None),
        center_id=center_id,
        technician_id=technician_id,
        jobs_completed=len(completed_jobs),
        jobs_first_fixed=sum(1 for job in completed_jobs if job.first_completion.data.get("fixed")),
        jobs_sla_met=sum(1 for job in completed_jobs if not job.breached()),
        complaints=len(complaint_ids),
        dealer_id=dealer_id,
        triage_mode=triage.data.get("mode") if triage else None,
        priority=triage.data.get("priority") if triage else None,
        escalated_at=min((e.time for e in by_type[ESCALATED]), default=None),
        first_accepted_at=min((e.time for e in by_type[JOB_ACCEPTED]), default=None),
        first_revisit_at=min((e.time for e in by_type[REVISIT_DONE]), default=None),
        jobs=len(job_facts),
        jobs_reassigned=sum(1 for job in job_facts if job.assignments >= 2),
        repeat_visits=sum(job.unfixed_completions for job in job_facts),
        **_process_fields(mine),
        **commerce_values(commerce_fields(e for e in mine if e.type in COMMERCE_TYPES and e.request_id == request_id)),
    )
    revisits = []
    for event in sorted(by_type[REVISIT_DONE], key=lambda e: e.chronological):
        job = jobs.get(event.job_id)
        center, technician = job.worker_at_first_completion() if job else (None, None)
        if technician is None:
            center, technician = center_id, technician_id
        revisits.append(
            RevisitFact(
                event_id=event.event_id,
                request_id=request_id,
                job_id=event.job_id or "",
                time=event.time,
                satisfaction=int(event.data["satisfaction"]),
                nps=event.data.get("nps"),
                dealer_key=dealer_key,
                region=region,
                product_line=product_line,
                center_id=center,
                technician_id=technician,
                dealer_id=dealer_id,
            )
        )
    return fact, revisits, job_facts


def _job_fact(job_id: str, request_id: str, job: _Job) -> JobFact:
    completions = job.of(JOB_COMPLETED)
    first = job.first_completion
    fixed = [c for c in completions if c.data.get("fixed")]
    reasons: dict[str, int] = defaultdict(int)
    for completion in completions:
        if not completion.data.get("fixed"):
            reasons[completion.data.get("reason") or UNSPECIFIED_REASON] += 1
    center_id, technician_id = job.worker_at_first_completion()

    def first_time(event_type: str) -> int | None:
        return min((e.time for e in job.events if e.type == event_type), default=None)

    return JobFact(
        job_id=job_id,
        request_id=request_id,
        created_at=first_time(JOB_CREATED),
        assignments=len(job.of(JOB_ASSIGNED)),
        first_assigned_at=first_time(JOB_ASSIGNED),
        first_accepted_at=first_time(JOB_ACCEPTED),
        first_arrived_at=first_time(JOB_ARRIVED),
        first_completed_at=first.time if first else None,
        first_fixed=bool(first.data.get("fixed")) if first else None,
        fixed_at=fixed[0].time if fixed else None,
        completions=len(completions),
        unfixed_completions=len(completions) - len(fixed),
        reasons=tuple(sorted(reasons.items())),
        sla_breached=job.breached(),
        center_id=center_id,
        technician_id=technician_id,
    )


def owning_request(event: AnalyticsEvent, job_requests: dict[str, str]) -> str | None:
    """The request an event counts for: its own `request_id`, or for a complaint that names only a job, the
    job's request (None until a job event has told which request that is)."""
    if event.request_id is not None:
        return event.request_id
    if event.type == COMPLAINT_OPENED and event.job_id is not None:
        return job_requests.get(event.job_id)
    return None


def job_requests_of(events: Iterable[AnalyticsEvent]) -> dict[str, str]:
    """job id → request id, from the job's own events (a complaint's pairing is not authoritative)."""
    return {
        e.job_id: e.request_id
        for e in events
        if e.job_id is not None and e.request_id is not None and e.type != COMPLAINT_OPENED
    }


def fold_all(events: Iterable[AnalyticsEvent]) -> tuple[list[RequestFact], list[RevisitFact]]:
    """The facts of every request in a set of events (the replay, and views `as_of` a past moment)."""
    unique = list({e.event_id: e for e in events}.values())
    job_requests = job_requests_of(unique)
    grouped: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    for event in unique:
        request_id = owning_request(event, job_requests)
        if request_id is not None:
            grouped[request_id].append(event)
    requests: list[RequestFact] = []
    revisits: list[RevisitFact] = []
    for request_id, request_events in grouped.items():
        fact, request_revisits = fold_request(request_id, request_events)
        requests.append(fact)
        revisits.extend(request_revisits)
    return requests, revisits


# --- versions: the facts as they stood at every recorded moment ------------------------------------------

FOREVER = 2**63 - 1  # valid_to of a version that still holds


@dataclass(frozen=True, slots=True)
class Versioned:
    """A fact that held from `valid_from` (inclusive) until `valid_to` (exclusive), both recorded times."""

    valid_from: int
    valid_to: int
    fact: object


def _owns_something(request_id: str, events: list[AnalyticsEvent]) -> bool:
    """Whether the reference (`fold_all`) would give the request a fact: some event of its own, or a complaint
    naming only one of its jobs once a job event has linked that job to it."""
    jobs = {e.job_id for e in events if e.type != COMPLAINT_OPENED and e.job_id is not None}
    return any(e.type != COMPLAINT_OPENED or e.request_id == request_id or e.job_id in jobs for e in events)


def fact_versions(
    request_id: str, events: Iterable[AnalyticsEvent]
) -> tuple[list[Versioned], list[Versioned], list[Versioned]]:
    """Every version of a request's facts (request, revisits, jobs): the fold of the events recorded by each
    distinct recorded time, kept only where it differs from the version before.

    The definition, a fresh fold at every moment (quadratic in a request's events): the projection uses
    `fold.fact_versions`, which carries one fold through the moments, and the property tests hold the two
    equal."""
    # Types the fold does not read (warranty checks, intake's own follow-ups…) change no fact: no version.
    ordered = sorted(
        (e for e in {e.event_id: e for e in events}.values() if e.type in HANDLED_TYPES), key=lambda e: e.recorded_at
    )
    out: tuple[list[Versioned], list[Versioned], list[Versioned]] = ([], [], [])
    current: list[dict[str, tuple[int, object]]] = [{}, {}, {}]  # per kind: id → (valid_from, fact)
    prefix: list[AnalyticsEvent] = []
    i = 0
    while i < len(ordered):
        moment = ordered[i].recorded_at
        while i < len(ordered) and ordered[i].recorded_at == moment:
            prefix.append(ordered[i])
            i += 1
        if not _owns_something(request_id, prefix):
            continue
        fact, revisits, jobs = fold_request_full(request_id, prefix)
        folded = ({request_id: fact}, {r.event_id: r for r in revisits}, {j.job_id: j for j in jobs})
        for kind in range(3):
            held, now = current[kind], folded[kind]
            for key in list(held):
                if key not in now or now[key] != held[key][1]:
                    since, old = held.pop(key)
                    out[kind].append(Versioned(since, moment, old))
            for key, value in now.items():
                if key not in held:
                    held[key] = (moment, value)
    for kind in range(3):
        for since, fact in current[kind].values():
            out[kind].append(Versioned(since, FOREVER, fact))
    return out
