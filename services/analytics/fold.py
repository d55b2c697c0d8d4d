"""The fold of a request's facts carried from one event to the next, and the versions of its facts carried from
one recorded moment to the next: what makes the live path (and a rebuild) cost each event once.

`facts.fold_request_full` folds a request from the set of its events, whatever their order; `fact_versions` used
to call it once per recorded moment over every event recorded by then (quadratic in a request's events, in
Python). `RequestFold` keeps, instead, what the fold needs to go on — the first of each step, per job its
assignments, completions, breaches and the visits still waiting on the customer — and takes events *in business
order* (`AnalyticsEvent.chronological`): each step's "first" is then the first one seen. An event earlier in
business order than one already folded (a late sync, a backdated correction) cannot be added to that state:
`accepts` says so and the caller folds the request again from its sorted events (`RequestFold.of`), which is the
same code over the same sorted list — so the result is the reference's whatever the arrival order; the property
tests (`tests/test_fold.py`) hold it equal to `fold_request_full` and the versions equal to the quadratic
definition. Pure: no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from operator import itemgetter

from services.analytics.commerce_facts import CommerceFields, commerce_fields
from services.analytics.facts import DIRECT, FOREVER, JobFact, RequestFact, RevisitFact, Versioned, commerce_values
from services.analytics.process_facts import CUSTOMER_SIDE, PATH_ACTIVITIES, bounces
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

_COMMERCE_NAMES = frozenset(f.name for f in fields(CommerceFields))

# The facts are carried as tuples of their fields' values, in the dataclasses' field order ("rows"): built, compared
# and turned into table rows at C speed. A frozen dataclass of 52 fields costs ~18 µs to construct (one
# `object.__setattr__` per field), which was the fold's largest single cost; the dataclasses are built only for
# callers that ask for them (`RequestFold.facts`, `VersionTrail.versions`). Each row is gathered from a dict by
# field name, so a row cannot put a value in another field's place.
_FIELDS = tuple(tuple(f.name for f in fields(cls)) for cls in (RequestFact, RevisitFact, JobFact))
_REQUEST_ROW, _REVISIT_ROW, _JOB_ROW = (itemgetter(*names) for names in _FIELDS)
_COMMERCE_DEFAULTS = {f.name: f.default for f in fields(RequestFact) if f.name in _COMMERCE_NAMES}
_FACT_CLASSES = (RequestFact, RevisitFact, JobFact)


_PLAIN = re.compile(r"[a-z_]+")
assert all(
    _PLAIN.fullmatch(a)
    for a in (
        *PATH_ACTIVITIES.values(),
        "resolved_by_phone",
        "triaged",
        "reassigned",
        "assigned",
        "fixed",
        "not_fixed",
    )
)

# `process_facts._json`'s encoding (compact, keys sorted), with one encoder instead of one per call.
_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


@dataclass(slots=True)
class _JobFold:
    """One job's part of the fold (events in business order)."""

    steps: bool = False  # an event other than a follow-up (a job known only by its revisit has no job fact)
    created_at: int | None = None
    assignments: int = 0
    first_assigned_at: int | None = None
    first_accepted_at: int | None = None
    first_arrived_at: int | None = None
    latest_assignment: AnalyticsEvent | None = None
    first_completion: AnalyticsEvent | None = None
    worker: tuple[str | None, str | None] = (None, None)  # (center, technician) at the first completion
    fixed_at: int | None = None
    completions: int = 0
    unfixed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    breaches: dict[str, AnalyticsEvent] = field(default_factory=dict)  # SLA kind → the source's latest decision
    technicians: list[str | None] = field(default_factory=list)  # of its assignments, in order (ping-pong)
    waiting: list[AnalyticsEvent] = field(default_factory=list)  # customer-side failed visits not yet followed
    built: tuple | None = None  # its fact's row as last built (None: an event of the job came since)

    def breached(self) -> bool:
        return any(e.type == SLA_BREACHED for e in self.breaches.values())

    def row(self, job_id: str, request_id: str) -> tuple:
        """Its `JobFact`'s field values, in field order."""
        if self.built is not None:
            return self.built
        first = self.first_completion
        self.built = _JOB_ROW(
            dict(
                job_id=job_id,
                request_id=request_id,
                created_at=self.created_at,
                assignments=self.assignments,
                first_assigned_at=self.first_assigned_at,
                first_accepted_at=self.first_accepted_at,
                first_arrived_at=self.first_arrived_at,
                first_completed_at=first.time if first else None,
                first_fixed=bool(first.data.get("fixed")) if first else None,
                fixed_at=self.fixed_at,
                completions=self.completions,
                unfixed_completions=self.unfixed,
                reasons=tuple(sorted(self.reasons.items())),
                sla_breached=self.breached(),
                center_id=self.worker[0],
                technician_id=self.worker[1],
            )
        )
        return self.built


class RequestFold:
    """The fold of one request, fed its events in business order; `facts()` equals `fold_request_full` over
    the events added so far (duplicates by event id count once)."""

    __slots__ = (
        "request_id",
        "last",
        "seen",
        "steps_seen",
        "complaint_jobs",
        "received",
        "created",
        "triage",
        "escalated_at",
        "cancelled_at",
        "first_assigned_at",
        "first_accepted_at",
        "first_arrived_at",
        "first_revisit_at",
        "fixed_at",
        "first_done",
        "jobs",
        "revisits",
        "complaints",
        "job_complaints",
        "path",
        "path_span",
        "texts",
        "revisit_facts",
        "assigned",
        "reasons",
        "waits",
        "followed",
        "commerce",
    )

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.last: tuple | None = None  # the business order of the last event folded
        self.seen: set[str] = set()
        self.steps_seen = False  # an event other than a complaint (even one of another request, as the reference)
        self.complaint_jobs: set[str] = set()  # the jobs complaints name
        self.received: AnalyticsEvent | None = None
        self.created: AnalyticsEvent | None = None
        self.triage: AnalyticsEvent | None = None
        self.escalated_at: int | None = None
        self.cancelled_at: int | None = None
        self.first_assigned_at: int | None = None
        self.first_accepted_at: int | None = None
        self.first_arrived_at: int | None = None
        self.first_revisit_at: int | None = None
        self.fixed_at: int | None = None  # the first completion with fixed=true, any job
        self.first_done: _JobFold | None = None  # the job completed first
        self.jobs: dict[str, _JobFold] = {}
        self.revisits: list[AnalyticsEvent] = []
        self.complaints: set[str] = set()  # complaints naming the request
        self.job_complaints: dict[str, set[str]] = {}  # job id → complaints naming only that job
        self.path: list[str] = []
        self.path_span: tuple[int, int] | None = None
        self.texts = ("[]", "{}", "{}")  # path, reasons and waits as the facts' JSON, kept as they change
        self.revisit_facts: tuple[tuple, list[tuple]] | None = None  # (what they show, their rows) as last built
        self.assigned = False
        self.reasons: dict[str, int] = {}
        self.waits: dict[str, int] = {}
        self.followed: list[tuple[int, int]] = []  # (next arrival, its wait) of each customer-side failed visit
        # Quotes and part requests: folded apart (commerce_facts), from their own list; the fields as last built.
        self.commerce: tuple[list[AnalyticsEvent], dict | None] = ([], _COMMERCE_DEFAULTS)

    @classmethod
    def of(cls, request_id: str, events: Iterable[AnalyticsEvent]) -> RequestFold:
        """The fold of a set of events in any order (sorted here): the from-scratch path."""
        fold = cls(request_id)
        unique = {e.event_id: e for e in events}
        fold.extend(sorted(unique.values(), key=lambda e: e.chronological))
        return fold

    def accepts(self, events: Iterable[AnalyticsEvent]) -> bool:
        """Whether these events all come after every event folded so far in business order (or are
        duplicates of folded ones): only then may they be added to this state."""
        last = self.last
        return last is None or all(e.event_id in self.seen or e.chronological > last for e in events)

    def extend(self, events: Sequence[AnalyticsEvent]) -> None:
        """Add events given in business order, each after everything folded so far."""
        for event in events:
            self.add(event)

    def add(self, e: AnalyticsEvent) -> None:
        if e.event_id in self.seen:
            return
        order = e.chronological
        if self.last is not None and order <= self.last:
            raise ValueError(f"{e.event_id} is earlier in business order than an event already folded")
        self.seen.add(e.event_id)
        self.last = order
        kind = e.type
        if kind == COMPLAINT_OPENED:
            complaint = e.data.get("complaint_id") or e.event_id
            if e.job_id is not None:
                self.complaint_jobs.add(e.job_id)
            if e.request_id == self.request_id:
                self.complaints.add(complaint)
            elif e.request_id is None and e.job_id is not None:
                self.job_complaints.setdefault(e.job_id, set()).add(complaint)
            return
        self.steps_seen = True
        if e.request_id != self.request_id:  # not the request's own: the reference leaves it out of the facts
            return
        if kind in COMMERCE_TYPES:  # on the path; otherwise folded apart (commerce_facts)
            if kind in PATH_ACTIVITIES:
                self._on_path(e)
            self.commerce = (self.commerce[0], None)
            self.commerce[0].append(e)
            return
        time = e.time
        job = None
        if e.job_id is not None:
            job = self.jobs.get(e.job_id)
            if job is None:
                job = self.jobs[e.job_id] = _JobFold()
            if kind != REVISIT_DONE:
                job.steps = True
                job.built = None
        if kind in PATH_ACTIVITIES or kind in (TRIAGED, JOB_ASSIGNED, JOB_COMPLETED):
            self._on_path(e)
        if kind == RECEIVED:
            if self.received is None:
                self.received = e
        elif kind == TRIAGED:
            if self.triage is None:
                self.triage = e
        elif kind == ESCALATED:
            if self.escalated_at is None:
                self.escalated_at = time
        elif kind == CANCELLED:
            if self.cancelled_at is None:
                self.cancelled_at = time
        elif kind == JOB_CREATED:
            if self.created is None:
                self.created = e
            if job is not None and job.created_at is None:
                job.created_at = time
        elif kind == JOB_ASSIGNED:
            if self.first_assigned_at is None:
                self.first_assigned_at = time
            if job is not None:
                job.assignments += 1
                if job.first_assigned_at is None:
                    job.first_assigned_at = time
                job.latest_assignment = e
                job.technicians.append(e.data.get("technician_id"))
        elif kind == JOB_ACCEPTED:
            if self.first_accepted_at is None:
                self.first_accepted_at = time
            if job is not None and job.first_accepted_at is None:
                job.first_accepted_at = time
        elif kind == JOB_ARRIVED:
            if self.first_arrived_at is None:
                self.first_arrived_at = time
            if job is not None:
                if job.first_arrived_at is None:
                    job.first_arrived_at = time
                self._arrived(job, e)
        elif kind == JOB_COMPLETED:
            self._completed(job, e)
        elif kind in (SLA_BREACHED, SLA_BREACH_WITHDRAWN):
            if job is not None:
                sla = e.data.get("kind", "")
                held = job.breaches.get(sla)
                if held is None or e.as_recorded > held.as_recorded:
                    job.breaches[sla] = e
        elif kind == REVISIT_DONE:
            if self.first_revisit_at is None:
                self.first_revisit_at = time
            self.revisits.append(e)

    def _on_path(self, e: AnalyticsEvent) -> None:
        kind = e.type
        if kind == TRIAGED:
            activity = "resolved_by_phone" if e.data.get("mode") == "phone" else "triaged"
        elif kind == JOB_ASSIGNED:
            activity = "reassigned" if self.assigned else "assigned"
            self.assigned = True
        elif kind == JOB_COMPLETED:
            activity = "fixed" if e.data.get("fixed") else "not_fixed"
        else:
            activity = PATH_ACTIVITIES[kind]
        # The path's JSON grows by one string: `_json(self.path)` without encoding the whole list again (an
        # activity is a plain name, `_PLAIN`, so it needs no escaping).
        text = self.texts[0]
        self.texts = (f'{text[:-1]}{"," if self.path else ""}"{activity}"]', *self.texts[1:])
        self.path.append(activity)
        self.path_span = (self.path_span[0] if self.path_span else e.time, e.time)

    def _completed(self, job: _JobFold | None, e: AnalyticsEvent) -> None:
        fixed = bool(e.data.get("fixed"))
        if fixed and self.fixed_at is None:
            self.fixed_at = e.time
        if job is None:
            return
        job.completions += 1
        if job.first_completion is None:
            job.first_completion = e
            latest = job.latest_assignment
            job.worker = (
                (latest.data.get("center_id"), latest.data.get("technician_id"))
                if latest is not None
                else (None, e.data.get("technician_id"))
            )
            if self.first_done is None:
                self.first_done = job
        if fixed:
            if job.fixed_at is None:
                job.fixed_at = e.time
            return
        job.unfixed += 1
        reason = e.data.get("reason") or UNSPECIFIED_REASON
        job.reasons[reason] = job.reasons.get(reason, 0) + 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.texts = (self.texts[0], _json(self.reasons), self.texts[2])
        if reason in CUSTOMER_SIDE:
            job.waiting.append(e)

    def _arrived(self, job: _JobFold, e: AnalyticsEvent) -> None:
        """A visit after failed ones that waited on the customer ends their wait (the first arrival strictly
        after them by (time, sequence); arrivals come in business order, so the first such is the earliest)."""
        if not job.waiting:
            return
        at = (e.time, e.sequence)
        still = []
        for failed in job.waiting:
            if at > (failed.time, failed.sequence):
                reason = failed.data.get("reason") or UNSPECIFIED_REASON
                self.waits[reason] = self.waits.get(reason, 0) + (e.time - failed.time)
                self.followed.append((e.time, e.time - failed.time))
                self.texts = (*self.texts[:2], _json(self.waits))
            else:
                still.append(failed)
        job.waiting = still

    def _commerce(self) -> dict:
        """The commerce fields as `RequestFact` keywords, built again only when such an event came."""
        events, built = self.commerce
        if built is None:
            built = commerce_values(commerce_fields(events))
            self.commerce = (events, built)
        return built

    # --- the facts -------------------------------------------------------------------------------------

    def owns_something(self) -> bool:
        """`facts._owns_something`: a step event, a complaint naming the request, or one naming a job of it."""
        return self.steps_seen or bool(self.complaints) or any(job_id in self.jobs for job_id in self.complaint_jobs)

    def facts(self) -> tuple[RequestFact, list[RevisitFact], list[JobFact]]:
        """The request's facts now: `facts.fold_request_full` over the events added so far."""
        request, revisits, jobs = self.rows()
        return RequestFact(*request), [RevisitFact(*r) for r in revisits], [JobFact(*j) for j in jobs]

    def rows(self) -> tuple[tuple, list[tuple], list[tuple]]:
        """`facts()` as rows (each fact's field values in field order): what the versions compare and store."""
        origin = self.received or self.created
        dealer_key = dealer_id = region = product_line = None
        if origin is not None:
            dealer_id = origin.data.get("dealer_id") or None
            dealer_key = dealer_id or DIRECT
            region, product_line = origin.data.get("region"), origin.data.get("product_line")
        triage = self.triage
        phone = triage is not None and triage.data.get("mode") == "phone"
        resolutions = [
            t for t in (triage.time if triage is not None and phone else None, self.fixed_at) if t is not None
        ]
        center_id, technician_id = self.first_done.worker if self.first_done else (None, None)
        jobs = self.jobs
        # The per-job counts in one pass (a request has one or two jobs; this runs once per recorded moment).
        completed = first_fixed = sla_met = with_steps = reassigned = repeat_visits = repeat_visited = ping_pong = 0
        for job in jobs.values():
            first = job.first_completion
            if first is not None:
                completed += 1
                if first.data.get("fixed"):
                    first_fixed += 1
                if not job.breached():
                    sla_met += 1
            if job.steps:
                with_steps += 1
                if job.assignments >= 2:
                    reassigned += 1
                repeat_visits += job.unfixed
            if job.unfixed:
                repeat_visited += 1
            if len(job.technicians) >= 2 and bounces(job.technicians):
                ping_pong += 1
        job_rows = [job.row(job_id, self.request_id) for job_id, job in sorted(jobs.items()) if job.steps]
        complaints = set(self.complaints)
        for job_id, named in self.job_complaints.items():
            if job_id in jobs:
                complaints |= named
        fixed_at = self.fixed_at
        repair_customer = 0
        if self.first_arrived_at is not None and fixed_at is not None:
            repair_customer = sum(wait for arrival, wait in self.followed if arrival <= fixed_at)
        request = dict(
            request_id=self.request_id,
            received_at=self.received.time if self.received else None,
            dealer_key=dealer_key,
            region=region,
            product_line=product_line,
            triaged_at=triage.time if triage else None,
            phone_triaged=phone,
            escalated=self.escalated_at is not None,
            cancelled_at=self.cancelled_at,
            first_assigned_at=self.first_assigned_at,
            first_arrived_at=self.first_arrived_at,
            resolved_at=min(resolutions, default=None),
            center_id=center_id,
            technician_id=technician_id,
            jobs_completed=completed,
            jobs_first_fixed=first_fixed,
            jobs_sla_met=sla_met,
            complaints=len(complaints),
            dealer_id=dealer_id,
            triage_mode=triage.data.get("mode") if triage else None,
            priority=triage.data.get("priority") if triage else None,
            escalated_at=self.escalated_at,
            first_accepted_at=self.first_accepted_at,
            first_revisit_at=self.first_revisit_at,
            jobs=with_steps,
            jobs_reassigned=reassigned,
            repeat_visits=repeat_visits,
            first_fixed_at=fixed_at,
            repair_customer_micros=repair_customer,
            path=self.texts[0],
            path_micros=self.path_span[1] - self.path_span[0] if self.path_span else 0,
            jobs_seen=len(jobs),
            jobs_repeat_visited=repeat_visited,
            jobs_ping_pong=ping_pong,
            failed_visit_reasons=self.texts[1],
            customer_waits=self.texts[2],
        )
        request.update(self._commerce())
        row = _REQUEST_ROW(request)
        shown: tuple = (origin.event_id if origin else None, len(self.revisits), center_id, technician_id)
        shown += tuple(jobs[e.job_id].worker if e.job_id is not None else None for e in self.revisits)
        if self.revisit_facts is not None and self.revisit_facts[0] == shown:
            return row, self.revisit_facts[1], job_rows
        revisits = []
        for e in self.revisits:
            owner = jobs.get(e.job_id) if e.job_id is not None else None
            center, technician = owner.worker if owner else (None, None)
            if technician is None:
                center, technician = center_id, technician_id
            revisits.append(
                _REVISIT_ROW(
                    dict(
                        event_id=e.event_id,
                        request_id=self.request_id,
                        job_id=e.job_id or "",
                        time=e.time,
                        satisfaction=int(e.data["satisfaction"]),
                        nps=e.data.get("nps"),
                        dealer_key=dealer_key,
                        region=region,
                        product_line=product_line,
                        center_id=center,
                        technician_id=technician,
                        dealer_id=dealer_id,
                    )
                )
            )
        self.revisit_facts = (shown, revisits)
        return row, revisits, job_rows


# --- versions: the facts as they stood at every recorded moment, carried from one moment to the next -------

FACT_KEYS = ("request_id", "event_id", "job_id")  # what identifies a request, revisit and job fact among versions


class VersionTrail:
    """The versions of one request's facts as its events are recorded (`facts.fact_versions`' definition: the
    fold of the events recorded by each distinct recorded time, kept where it differs from the version before),
    with the fold carried from one moment to the next.

    Started from the events already folded (`folded`), it holds their facts as the stored open versions (valid
    from a moment not known here: `None`); `record` then adds the events of later recorded moments, in
    ascending order. `ended` lists the stored open versions that stop holding (kind, key, at), `closed` the new
    versions that already stopped, `opened()` the new ones that still hold."""

    def __init__(self, request_id: str, folded: Iterable[AnalyticsEvent] = ()) -> None:
        self.request_id = request_id
        self.events = list({e.event_id: e for e in folded if e.type in HANDLED_TYPES}.values())
        self.ids = {e.event_id for e in self.events}
        self.fold = RequestFold.of(request_id, self.events)
        self.held: list[dict[str, tuple[int | None, tuple]]] = [{}, {}, {}]  # per kind: key → (from, row)
        self.closed: tuple[list[tuple], list[tuple], list[tuple]] = ([], [], [])  # (from, to, row)
        self.ended: list[tuple[int, str, int]] = []
        self.refolds = 0  # moments whose events came before folded ones in business order
        self.moment: int | None = max((e.recorded_at for e in self.events), default=None)
        if self.events and self.fold.owns_something():
            for kind, now in enumerate(self._now()):
                self.held[kind] = {key: (None, value) for key, value in now.items()}

    def _now(self) -> tuple[dict, dict, dict]:
        # A row's first value is its key (FACT_KEYS): request_id, event_id, job_id.
        request, revisits, jobs = self.fold.rows()
        return {self.request_id: request}, {r[0]: r for r in revisits}, {j[0]: j for j in jobs}

    def record(self, moment: int, events: Iterable[AnalyticsEvent]) -> None:
        """The events recorded at `moment`, later than every moment recorded before."""
        if self.moment is not None and moment <= self.moment:
            raise ValueError(f"moment {moment} is not after {self.moment}")
        new = [
            e
            for e in {e.event_id: e for e in events}.values()
            if e.type in HANDLED_TYPES and e.event_id not in self.ids
        ]
        if not new:
            return
        self.moment = moment
        self.events.extend(new)
        self.ids.update(e.event_id for e in new)
        new.sort(key=lambda e: e.chronological)
        if self.fold.accepts(new):
            self.fold.extend(new)
        else:  # a late or backdated event: fold the request again from all its events, in business order
            self.fold = RequestFold.of(self.request_id, self.events)
            self.refolds += 1
        if not self.fold.owns_something():
            return
        for kind, now in enumerate(self._now()):
            held = self.held[kind]
            for key in list(held):
                if key not in now or now[key] != held[key][1]:
                    since, old = held.pop(key)
                    if since is None:
                        self.ended.append((kind, key, moment))
                    else:
                        self.closed[kind].append((since, moment, old))
            for key, value in now.items():
                if key not in held:
                    held[key] = (moment, value)

    def opened(self) -> tuple[list[Versioned], list[Versioned], list[Versioned]]:
        """The new versions that still hold (stored open versions that still hold are not repeated)."""
        return tuple(  # type: ignore[return-value]
            [Versioned(since, FOREVER, cls(*row)) for since, row in held.values() if since is not None]
            for held, cls in zip(self.held, _FACT_CLASSES)
        )

    def versions(self) -> tuple[list[Versioned], list[Versioned], list[Versioned]]:
        """Every new version, closed then open, per kind."""
        return tuple(  # type: ignore[return-value]
            [Versioned(since, to, cls(*row)) for since, to, row in rows]
            for rows, cls in zip(self.rows(), _FACT_CLASSES)
        )

    def rows(self) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """`versions()` as (valid_from, valid_to, row) per kind, closed then open: what the tables store."""
        return tuple(  # type: ignore[return-value]
            closed + [(since, FOREVER, row) for since, row in held.values() if since is not None]
            for closed, held in zip(self.closed, self.held)
        )


def by_moment(events: Iterable[AnalyticsEvent]) -> list[tuple[int, list[AnalyticsEvent]]]:
    """Events grouped by recorded time, ascending."""
    groups: dict[int, list[AnalyticsEvent]] = {}
    for e in events:
        groups.setdefault(e.recorded_at, []).append(e)
    return sorted(groups.items(), key=lambda item: item[0])


def fact_versions(
    request_id: str, events: Iterable[AnalyticsEvent]
) -> tuple[list[Versioned], list[Versioned], list[Versioned]]:
    """Every version of a request's facts (request, revisits, jobs): `facts.fact_versions`, one fold carried
    through the moments instead of one fold per moment."""
    return _trail(request_id, events).versions()


def version_rows(request_id: str, events: Iterable[AnalyticsEvent]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """`fact_versions` as rows (`VersionTrail.rows`), for the tables."""
    return _trail(request_id, events).rows()


def _trail(request_id: str, events: Iterable[AnalyticsEvent]) -> VersionTrail:
    trail = VersionTrail(request_id)
    for moment, group in by_moment({e.event_id: e for e in events}.values()):
        trail.record(moment, group)
    return trail
