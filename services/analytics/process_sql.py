"""The process view (hand-offs, rework, variants, findings) as SQL over the versioned request facts in DuckDB,
with the exact arithmetic of the reference (`process.py`): the engine filters, groups, sorts and picks order
statistics; Python only turns those integers into the rounded numbers of a row.

Cohort, keys, dealer scope and `as_of` are the throughput view's (`sqlviews`): the request fact versions valid
at that recorded moment (`valid_from <= t < valid_to`), received in `[from, to)`. The per-request inputs of the
process view are folded with the facts (`process_facts.ProcessFields`); the one input that no request's fold
sees — a complaint reopened by an event naming only the complaint — is counted from the stored events, with
`recorded_at <= t` as the same predicate."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import duckdb
import numpy as np

from services.analytics.metrics import MICROS_PER_MINUTE, Window
from services.analytics.ordered_durations import DenseRanks, Encoding, Middle, Ordered, Runs
from services.analytics.process import (
    CONTRACT_STEPS,
    KIND_ORDER,
    STEP_OWNERS,
    STEPS,
    FindingRules,
    _finding,
)
from services.analytics.process_facts import CUSTOMER_SIDE
from services.analytics.projection import Tables
from services.analytics.sqlviews import (
    _LEVELS,
    _REQUEST_KEYS,
    _VALID,
    _median_minutes,
    _minutes,
    _p90_minutes,
    _params,
    _pct,
    _present,
    _ranks,
    _scope,
    _tenths,
    _twice_median,
)
from services.analytics.views import GroupBy

_COHORT = "received_at >= $s AND received_at < $e"
# step → (start, end) columns of the request facts; measured when both exist.
_BOUNDS = {
    "triage": ("received_at", "triaged_at"),
    "assign": ("CASE WHEN NOT phone_triaged THEN triaged_at END", "first_assigned_at"),
    "accept": ("first_assigned_at", "first_accepted_at"),
    "travel": ("first_accepted_at", "first_arrived_at"),
    "repair": ("first_arrived_at", "first_fixed_at"),
    "follow_up": ("first_fixed_at", "first_revisit_at"),
    "quoting": ("quote_required_at", "quote_issued_at"),
    "customer_decision": ("quote_issued_at", "quote_decided_at"),
    "parts_wait": ("parts_wait_from", "parts_wait_to"),
}


def _duration(step: str) -> str:
    start, end = _BOUNDS[step]
    return f"({end}) - ({start})"


def _cohort(tables: Tables, group_by: GroupBy, dealer_id: str | None, columns: str) -> str:
    return f"SELECT {_REQUEST_KEYS[group_by][0]} AS k, {columns} {_cohort_from(tables, group_by, dealer_id)}"


def _cohort_from(tables: Tables, group_by: GroupBy, dealer_id: str | None) -> str:
    """FROM and WHERE of the window's cohort: the request facts valid at `$t`, received in the window, with a key
    (and in the dealer's scope)."""
    has_key = _REQUEST_KEYS[group_by][1]
    return f"FROM {tables.requests} WHERE {_VALID} AND {has_key}{_scope(dealer_id)} AND {_COHORT}"


_STEP_COLUMNS = (
    "request_id, received_at, triaged_at, phone_triaged, first_assigned_at, first_accepted_at, "
    "first_arrived_at, first_fixed_at, first_revisit_at, repair_customer_micros, quote_required_at, "
    "quote_issued_at, quote_decided_at, parts_wait_from, parts_wait_to"
)


def _step_stats(tables: Tables, group_by: GroupBy, dealer_id: str | None) -> str:
    """Per key: for each step, the number of its durations, their two middle values and nearest-rank p90
    (`sqlviews._ranks`: an exact discrete quantile, not a sorted list of every duration) and their sum; then the
    repair's customer time. Five columns a step, in `STEPS` order, after the key."""
    stats = ", ".join(f"{_ranks(_duration(s))}, sum({_duration(s)})" for s in STEPS)
    return (
        f"WITH f AS ({_cohort(tables, group_by, dealer_id, _STEP_COLUMNS)}) "
        f"SELECT k, {stats}, coalesce(sum(CASE WHEN {_duration('repair')} IS NOT NULL "
        f"THEN repair_customer_micros END), 0) AS customer FROM f GROUP BY k"
    )


def handoff_rows(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    group_by: GroupBy,
    as_of: int | None = None,
    dealer_id: str | None = None,
) -> list[dict]:
    """`GET /v1/views/handoffs` (see `process.handoff_rows`)."""
    rows = []
    for r in cur.execute(_step_stats(tables, group_by, dealer_id), _params(as_of, window, dealer_id)).fetchall():
        per_step = {s: r[1 + 5 * i : 6 + 5 * i] for i, s in enumerate(STEPS)}
        grand = sum(int(per_step[s][4] or 0) for s in CONTRACT_STEPS)  # the new steps lie inside assign, repair
        for step, (n, low, high, p90_value, total) in per_step.items():
            if not n:
                continue
            rows.append(
                {
                    "key": _present(r[0], group_by),
                    "step": step,
                    "owner": STEP_OWNERS[step],
                    "count": n,
                    "median_minutes": _median_minutes(n, low, high),
                    "p90_minutes": _p90_minutes(n, p90_value),
                    "total_minutes": _minutes(int(total)),
                    "share_pct": _pct(int(total), grand),
                    "customer_minutes": _minutes(int(r[-1]) if step == "repair" else 0),
                }
            )
    return sorted(rows, key=lambda row: (row["key"], STEPS.index(row["step"])))


def _reopened(cur: duckdb.DuckDBPyConnection, tables: Tables, t: int) -> dict[str, int]:
    """request_id → complaints about it (naming it, or one of its jobs) reopened, as recorded by t.

    The few reopened complaints' opened events first (two scans of the events' type), then, only for those naming
    no request, their job's request: one correlated lookup per opened complaint over every stored event cost ~1 s
    of CPU per call at 500k requests, whatever the window."""
    cid = "coalesce(e.complaint_id, json_extract_string(e.data, '$.complaint_id'))"
    opened = cur.execute(
        f"""
        SELECT {cid} AS cid, e.request_id, e.job_id FROM {tables.events} e
        WHERE e.type = 'complaint.opened' AND e.recorded_at <= $t AND {cid} IN (
            SELECT {cid} FROM {tables.events} e WHERE e.type = 'complaint.reopened' AND e.recorded_at <= $t)""",
        {"t": t},
    ).fetchall()
    jobs = sorted({job for _, request, job in opened if request is None and job is not None})
    request_of_job: dict[str, str] = {}
    if jobs:
        request_of_job = dict(
            cur.execute(
                f"SELECT job_id, any_value(request_id) FROM {tables.events} WHERE job_id = ANY($jobs) "
                "AND request_id IS NOT NULL AND type NOT LIKE 'complaint.%' AND recorded_at <= $t GROUP BY job_id",
                {"jobs": jobs, "t": t},
            ).fetchall()
        )
    complaints: dict[str, set[str]] = {}
    for complaint, request, job in opened:
        owner = request if request is not None else request_of_job.get(job)
        if owner is not None:
            complaints.setdefault(owner, set()).add(complaint)
    return {owner: len(named) for owner, named in complaints.items()}


def rework_rows(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    group_by: GroupBy,
    as_of: int | None = None,
    dealer_id: str | None = None,
) -> list[dict]:
    """`GET /v1/views/rework` (see `process.rework_rows`)."""
    columns = (
        "request_id, jobs_seen, jobs_reassigned, jobs_completed, jobs_repeat_visited, repeat_visits, "
        "failed_visit_reasons"
    )
    params = _params(as_of, window, dealer_id)
    reopened = _reopened(cur, tables, params["t"])
    # The cohort grouped by key and failed-visit reasons first (a few distinct JSON texts per key), so each text
    # is parsed once per key rather than once per request, and a single scan of the facts serves both the counts
    # and the reasons (a correlated subquery over the reasons per request cost half the view at 100k requests).
    # The reopened complaints, usually none, are joined only when there are some.
    if reopened:
        f = (
            f"WITH r AS (SELECT unnest(CAST($reopened_ids AS VARCHAR[])) AS request_id, "
            f"unnest(CAST($reopened_counts AS BIGINT[])) AS reopened), "
            f"f AS (SELECT * FROM ({_cohort(tables, group_by, dealer_id, columns)}) LEFT JOIN r USING (request_id))"
        )
    else:
        f = f"WITH f AS (SELECT *, 0 AS reopened FROM ({_cohort(tables, group_by, dealer_id, columns)}))"
    sql = f"""
        {f},
        c AS (SELECT k, failed_visit_reasons AS fr, count(*) AS n, sum(jobs_seen) AS jobs,
                     sum(jobs_reassigned) AS reassigned, sum(jobs_completed) AS completed,
                     sum(jobs_repeat_visited) AS repeated, sum(repeat_visits) AS visits,
                     coalesce(sum(reopened), 0) AS reopened
              FROM f GROUP BY k, fr),
        reasons AS (SELECT k, reason, sum(n * CAST(json_extract(fr, '$."' || reason || '"') AS BIGINT)) AS n
                    FROM (SELECT k, n, fr, unnest(json_keys(fr)) AS reason FROM c WHERE fr <> '{{}}')
                    GROUP BY k, reason),
        by_key AS (SELECT k, map(list(reason ORDER BY reason), list(n ORDER BY reason)) AS reasons
                   FROM reasons GROUP BY k),
        g AS (SELECT k, sum(jobs) AS jobs, sum(reassigned) AS reassigned, sum(completed) AS completed,
                     sum(repeated) AS repeated, sum(visits) AS visits, sum(reopened) AS reopened
              FROM c GROUP BY k HAVING sum(jobs) > 0)
        SELECT g.*, by_key.reasons FROM g LEFT JOIN by_key ON g.k IS NOT DISTINCT FROM by_key.k"""
    rows = []
    for k, jobs, reassigned, completed, repeated, visits, reopened_n, reasons in cur.execute(
        sql,
        {**params, "reopened_ids": list(reopened), "reopened_counts": list(reopened.values())} if reopened else params,
    ).fetchall():
        rows.append(
            {
                "key": _present(k, group_by),
                "jobs": int(jobs),
                "reassigned_pct": _pct(int(reassigned), int(jobs)),
                "repeat_visit_pct": _pct(int(repeated), int(completed)),
                "repeat_visits": int(visits),
                "reasons": {reason: int(n) for reason, n in sorted((reasons or {}).items())},
                "reopened_complaints": int(reopened_n),
            }
        )
    return sorted(rows, key=lambda row: row["key"])


def variant_rows(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    group_by: GroupBy,
    as_of: int | None = None,
    dealer_id: str | None = None,
    request_id_limit: int = 20,
) -> list[dict]:
    """`GET /v1/views/variants` (see `process.variant_rows`)."""
    sql = f"""
        WITH f AS ({_cohort(tables, group_by, dealer_id, "request_id, path, path_micros")}),
        p AS (SELECT k, path, count(*) AS n, count(path_micros) AS m, quantile_disc(path_micros, {_LEVELS}) AS q,
                     min(request_id, {int(request_id_limit)}) AS ids FROM f GROUP BY k, path)
        SELECT k, path, n, m, q[1], q[2], q[3], ids, sum(n) OVER (PARTITION BY k) FROM p"""
    rows = []
    paths: dict[str, list[str]] = {}  # a few dozen distinct paths in thousands of rows: each parsed once
    for k, path, n, m, low, high, p90_value, ids, cohort in cur.execute(
        sql, _params(as_of, window, dealer_id)
    ).fetchall():
        if path not in paths:
            paths[path] = json.loads(path)
        rows.append(
            {
                "key": _present(k, group_by),
                "path": list(paths[path]),
                "requests": n,
                "share_pct": _pct(n, int(cohort)),
                "median_minutes": _median_minutes(m, low, high),  # of the paths with a duration
                "p90_minutes": _p90_minutes(m, p90_value),
                "request_ids": list(ids),
            }
        )
    return sorted(rows, key=lambda row: (row["key"], -row["requests"], row["path"]))


# --- findings --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StepByKey:
    """One step over the cohort by key position: each key's count and twice its median, and for the keys compared
    with their peers (`peer_min_requests` measured on each side) the peers' median, twice."""

    middles: list[Middle]
    peers: list[tuple[int, int]]  # (key position, twice the others' median)


def _steps_by_key(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    peer_min_requests: int,
) -> tuple[list, dict[str, _StepByKey]]:
    """The cohort's keys (sorted, None last) and every step's medians by key, from two scans: the keys with their
    requests and each step's count and bounds, then every request's durations encoded for one sort per step
    (`ordered_durations`). The engine's exact quantiles per key and step cost ~30 ms of CPU a step at 1M requests
    over 12 months, and reading the durations raw to mask, gather and encode them in numpy as much again."""
    cohort = _cohort(tables, group_by, dealer_id, _STEP_COLUMNS)
    bounds = ", ".join(f"count({_duration(s)}), min({_duration(s)}), max({_duration(s)})" for s in STEPS)
    rows = cur.execute(f"WITH f AS ({cohort}) SELECT k, count(*), {bounds} FROM f GROUP BY k", params).fetchall()
    rows.sort(key=lambda r: (r[0] is None, r[0] or ""))
    order = [r[0] for r in rows]
    named = [k for k in order if k is not None]
    code = f"coalesce(c.code, {len(named)})"
    columns, encodings, ranked = [], {}, []
    for i, step in enumerate(STEPS):
        if not any(r[2 + 3 * i] for r in rows):
            continue
        lowest = min(r[3 + 3 * i] for r in rows if r[3 + 3 * i] is not None)
        highest = max(r[4 + 3 * i] for r in rows if r[4 + 3 * i] is not None)
        encoding = Encoding.of(lowest, highest, len(order))
        if encoding is None:  # ranked in numpy instead (`DenseRanks`): the raw durations
            ranked.append(step)
            columns.append(f"{_duration(step)} AS d_{step}")
        else:
            encodings[step] = encoding
            columns.append(f"{encoding.sql(code, _duration(step))} AS e_{step}")
    found = {
        step: _StepByKey([(0, None)] * len(order), [])
        for i, step in enumerate(STEPS)
        if not any(r[2 + 3 * i] for r in rows)
    }
    if not columns:
        return order, found
    if ranked:
        columns.append(f"{code} AS code")
    sql = (
        f"WITH f AS ({cohort}), c AS (SELECT unnest($keys) AS key, unnest(range(len($keys))) AS code) "
        f"SELECT {', '.join(columns)} FROM f LEFT JOIN c ON f.k = c.key"
    )
    # The relation's fetch converts the result as it streams: the cursor's collected it first (~40 % more CPU).
    fetched = cur.sql(sql, params={**params, "keys": named}).fetchnumpy()
    codes = np.asarray(fetched.pop("code"), dtype=np.int64) if ranked else None
    runs = Runs.of([r[1] for r in rows])

    def step_by_key(i: int, step: str) -> _StepByKey:
        # The step's column leaves `fetched` here, so its array (8 MB at 1M requests) is freed once the step's
        # medians and peers' medians are read; keeping every step's encoded and decoded arrays to the end of the
        # findings held twice as much (1M synthetic requests by dealer: a call's traced peak 161 → 92 MiB).
        counts = np.array([r[2 + 3 * i] for r in rows], dtype=np.int64)
        if step in encodings:
            encoding: Encoding | DenseRanks = encodings[step]
            encoded = np.asarray(fetched.pop(f"e_{step}"), dtype=np.int64)
        else:
            assert codes is not None  # fetched with the ranked steps
            durations = fetched.pop(f"d_{step}")
            encoding, encoded = DenseRanks.encode(
                codes, np.ma.getdata(durations).astype(np.int64, copy=False), ~np.ma.getmaskarray(durations)
            )
            del durations
        ordered = Ordered.of(encoded, runs, counts, encoding)
        middles, everyone = ordered.middles(), ordered.measured
        chosen = [
            key for key, (n, _) in enumerate(middles) if n >= peer_min_requests and everyone - n >= peer_min_requests
        ]
        return _StepByKey(middles, list(zip(chosen, ordered.peer_middles(chosen))))

    # Each step's sorts on its own thread (numpy releases the GIL while it sorts): the two cores the engine uses
    # for the scans, instead of one for ~20 ms a step at 1M requests.
    with ThreadPoolExecutor(max_workers=2) as pool:
        measured = [(i, step) for i, step in enumerate(STEPS) if step in encodings or step in ranked]
        for (_, step), by_key in zip(measured, pool.map(lambda pair: step_by_key(*pair), measured)):
            found[step] = by_key
    return order, found


def _target_middles(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    steps: list[str],
) -> dict[object, dict[str, Middle]]:
    """Per key, the count and twice the median of the given steps (the targets'), picked by the engine."""
    if not steps:
        return {}
    stats = ", ".join(_ranks(_duration(s)) for s in steps)
    sql = f"WITH f AS ({_cohort(tables, group_by, dealer_id, _STEP_COLUMNS)}) SELECT k, {stats} FROM f GROUP BY k"
    middles: dict[object, dict[str, Middle]] = {}
    for r in cur.execute(sql, params).fetchall():
        per_step = {}
        for i, step in enumerate(steps):
            n, low, high = r[1 + 4 * i] or 0, r[2 + 4 * i], r[3 + 4 * i]
            per_step[step] = (n, _twice_median(n, low, high))
        middles[r[0]] = per_step
    return middles


def _over(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    bars: list[tuple[object, str, int]],
    limit: int,
) -> list[tuple[int, list[str]]]:
    """For each (raw key, step, bar in µs): how many of the key's requests took longer than the bar on the step,
    and the first `limit` of their ids (sorted)."""
    if not bars:
        return []
    durations = " ".join(f"WHEN '{step}' THEN {_duration(step)}" for step in STEPS)
    sql = (
        f"WITH f AS ({_cohort(tables, group_by, dealer_id, _STEP_COLUMNS)}), "
        f"b AS (SELECT unnest($bar_i) AS i, unnest($bar_k) AS k, unnest($bar_step) AS step, "
        f"unnest($bar_micros) AS bar) "
        f"SELECT b.i, count(*), min(f.request_id, {int(limit)}) FROM f "
        f"JOIN b ON f.k IS NOT DISTINCT FROM b.k AND (CASE b.step {durations} END) > b.bar GROUP BY b.i"
    )
    found = {
        i: (n, list(ids))
        for i, n, ids in cur.execute(
            sql,
            {
                **params,
                "bar_i": list(range(len(bars))),
                "bar_k": [key for key, _, _ in bars],
                "bar_step": [step for _, step, _ in bars],
                "bar_micros": [bar for _, _, bar in bars],
            },
        ).fetchall()
    }
    return [found.get(i, (0, [])) for i in range(len(bars))]


def finding_rows(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    group_by: GroupBy,
    as_of: int | None = None,
    dealer_id: str | None = None,
    rules: FindingRules | None = None,
) -> list[dict]:
    """`GET /v1/views/process-findings` (see `process.finding_rows`).

    Keyed by an entity (dealer, center, technician, …), every step's durations are read once and ordered in
    numpy, which gives each key's medians and the peers' (`_ordered_by_key`); by all, day or month there are no
    peers, and only the targets' steps are ranked, by the engine."""
    rules = FindingRules() if rules is None else rules
    params = _params(as_of, window, dealer_id)
    targets = [step for step in rules.handoff_targets if step in STEPS]  # the reference skips unknown steps too
    found: list[dict] = []
    if group_by in (GroupBy.all, GroupBy.day, GroupBy.month):
        middles = _target_middles(cur, tables, group_by, dealer_id, params, targets)
    else:
        order, steps = _steps_by_key(cur, tables, group_by, dealer_id, params, rules.peer_min_requests)
        middles = {key: {step: steps[step].middles[i] for step in STEPS} for i, key in enumerate(order)}
        found += _slower_than_peers(cur, tables, group_by, dealer_id, params, order, steps, rules)
    found += _slow_handoffs(cur, tables, group_by, dealer_id, params, middles, targets, rules)
    found += _ping_pong(cur, tables, group_by, dealer_id, params, rules)
    found += _repeat_visits(cur, tables, group_by, dealer_id, params, rules)
    return sorted(found, key=lambda f: (KIND_ORDER.index(f["kind"]), f["key"], f["step"] or "", f["reason"] or ""))


def _slow_handoffs(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    middles: dict[object, dict[str, Middle]],
    targets: list[str],
    rules: FindingRules,
) -> list[dict]:
    slow = []
    for step in targets:
        target = rules.handoff_targets[step]
        twice_target = 2 * Fraction(target) * MICROS_PER_MINUTE
        for key, per_step in middles.items():
            n, twice = per_step[step]
            if n and twice is not None and twice > twice_target:
                median = _tenths(twice, 2 * MICROS_PER_MINUTE)
                slow.append(
                    _StepCandidate(
                        key,
                        step,
                        _floor(twice_target / 2),
                        n,
                        f"{step} takes {median} min (median) against a target of {target} min",
                        {"median_minutes": median, "target_minutes": target},
                    )
                )
    return _step_findings(cur, tables, group_by, dealer_id, params, "slow_handoff", slow, rules)


@dataclass(frozen=True)
class _StepCandidate:
    """A key whose median on a step is over a bar (µs, floored): a finding once its requests over the bar are
    counted (`_over`)."""

    key: object
    step: str
    bar: int
    count: int  # the key's requests measured on the step
    detail: str
    numbers: dict


def _step_findings(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    kind: str,
    candidates: list[_StepCandidate],
    rules: FindingRules,
) -> list[dict]:
    """The findings of `kind` for the candidates, each with its requests over its bar (how many, the first ids)."""
    bars = [(c.key, c.step, c.bar) for c in candidates]
    return [
        _finding_of(
            kind,
            _present(c.key, group_by),
            c.count,
            ids,
            rules,
            c.detail,
            step=c.step,
            owner=STEP_OWNERS[c.step],
            **c.numbers,
            total=total,
        )
        for c, (total, ids) in zip(
            candidates, _over(cur, tables, group_by, dealer_id, params, bars, rules.request_id_limit)
        )
    ]


def _slower_than_peers(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    order: list,
    steps: dict[str, _StepByKey],
    rules: FindingRules,
) -> list[dict]:
    # median ≥ factor × the peers' median and median − the peers' median ≥ the margin, in integers: twice the
    # medians × the fractions' denominators.
    factor, margin = Fraction(rules.peer_factor), Fraction(rules.peer_margin_minutes) * 2 * MICROS_PER_MINUTE
    candidates = []
    for step in STEPS:
        middles = steps[step].middles
        for i, twice_peer in steps[step].peers:
            count, twice = middles[i]
            assert twice is not None  # a key with durations
            if (
                twice * factor.denominator < factor.numerator * twice_peer
                or (twice - twice_peer) * margin.denominator < margin.numerator
            ):
                continue
            bar = (factor.numerator * twice_peer) // (2 * factor.denominator)  # ⌊factor × peers' median⌋
            median, peer_median = _tenths(twice, 2 * MICROS_PER_MINUTE), _tenths(twice_peer, 2 * MICROS_PER_MINUTE)
            candidates.append(
                _StepCandidate(
                    order[i],
                    step,
                    bar,
                    count,
                    f"{step} takes {median} min (median) against {peer_median} min for the others",
                    {"median_minutes": median, "peer_median_minutes": peer_median},
                )
            )
    return _step_findings(cur, tables, group_by, dealer_id, params, "slower_than_peers", candidates, rules)


def _ping_pong(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    rules: FindingRules,
) -> list[dict]:
    key, cohort = _REQUEST_KEYS[group_by][0], _cohort_from(tables, group_by, dealer_id)
    return [
        _finding_of(
            "ping_pong",
            _present(k, group_by),
            int(jobs),
            ids,
            rules,
            f"{int(jobs)} job(s) bounced between technicians (3+ assignments or A→B→A)",
            owner="dispatch",
            total=n,
        )
        for k, jobs, n, ids in cur.execute(
            f"SELECT {key} AS k, sum(jobs_ping_pong), count(*), "
            f"min(request_id, {int(rules.request_id_limit)}) {cohort} AND jobs_ping_pong > 0 "
            f"GROUP BY k",
            params,
        ).fetchall()
    ]


def _repeat_visits(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    rules: FindingRules,
) -> list[dict]:
    key, cohort = _REQUEST_KEYS[group_by][0], _cohort_from(tables, group_by, dealer_id)
    # Each distinct reasons text parsed once (a few dozen among the ~165k requests with a failed visit over a year
    # at 1M requests, where parsing each request's cost ~40 ms of CPU), the customer's waits only where there are
    # some.
    sql = f"""
        WITH r AS (SELECT {key} AS k, request_id, failed_visit_reasons AS fr, customer_waits AS cw
                   {cohort} AND repeat_visits > 0),
        reasons AS (SELECT fr, reason, CAST(json_extract(fr, '$."' || reason || '"') AS BIGINT) AS visits
                    FROM (SELECT fr, unnest(json_keys(fr)) AS reason FROM (SELECT DISTINCT fr FROM r)))
        SELECT k, reason, sum(visits), count(*), min(request_id, {int(rules.request_id_limit)}),
               coalesce(sum(CASE WHEN cw <> '{{}}'
                                 THEN CAST(json_extract(cw, '$."' || reason || '"') AS BIGINT) END), 0)
        FROM r JOIN reasons USING (fr) GROUP BY k, reason"""
    found = []
    for k, reason, visits, n, ids, waited in cur.execute(sql, params).fetchall():
        customer = reason in CUSTOMER_SIDE
        # `process.repeat_visit_finding`'s row, its minutes rounded in integers (a Fraction each cost ~15 µs:
        # ~20 ms for the ~1,200 rows by technician over a year)
        waited_minutes = _minutes(int(waited)) if customer else None
        detail = f"{int(visits)} visit(s) did not fix the unit: {reason}"
        if customer:
            detail += f"; {waited_minutes} min waiting on the customer until the next visit"
        found.append(
            {
                "kind": "repeat_visits",
                "key": _present(k, group_by),
                "step": None,
                "owner": "customer" if customer else "technician",
                "reason": reason,
                "side": "customer" if customer else "ours",
                "customer_minutes": waited_minutes,
                "count": int(visits),
                "requests": n,
                "detail": detail,
                "request_ids": list(ids),
            }
        )
    return found


def _floor(bar: Fraction) -> int:
    """d > bar ⇔ d > ⌊bar⌋ for an integer d."""
    return bar.numerator // bar.denominator


def _finding_of(
    kind: str, key: str, count: int, ids: list[str], rules: FindingRules, detail: str, total: int | None = None, **extra
) -> dict:
    row = _finding(kind, key, count, ids, rules, detail, **extra)
    if total is not None:
        row["requests"] = total
    return row
