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
from fractions import Fraction

import duckdb
import numpy as np

from services.analytics.metrics import MICROS_PER_MINUTE, Window, percentage, rounded, rounded_minutes
from services.analytics.process import (
    CONTRACT_STEPS,
    KIND_ORDER,
    STEP_OWNERS,
    STEPS,
    FindingRules,
    _finding,
    repeat_visit_finding,
)
from services.analytics.process_facts import CUSTOMER_SIDE
from services.analytics.projection import Tables
from services.analytics.sqlviews import (
    _LEVELS,
    _REQUEST_KEYS,
    _VALID,
    _median,
    _median_minutes,
    _minutes,
    _p90_minutes,
    _params,
    _pct,
    _present,
    _ranks,
    _scope,
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
    key, has_key = _REQUEST_KEYS[group_by]
    return (
        f"SELECT {key} AS k, {columns} FROM {tables.requests} "
        f"WHERE {_VALID} AND {has_key}{_scope(dealer_id)} AND {_COHORT}"
    )


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
    sql = f"""
        WITH f AS ({_cohort(tables, group_by, dealer_id, columns)}),
        reopened AS (SELECT unnest(CAST($reopened_ids AS VARCHAR[])) AS request_id,
                            unnest(CAST($reopened_counts AS BIGINT[])) AS reopened),
        reasons AS (
            SELECT k, reason, sum(CAST(json_extract(failed_visit_reasons, '$."' || reason || '"') AS BIGINT)) AS n
            FROM (SELECT k, failed_visit_reasons, unnest(json_keys(failed_visit_reasons)) AS reason
                  FROM f WHERE repeat_visits > 0) GROUP BY k, reason),
        g AS (
            SELECT k, sum(jobs_seen) AS jobs, sum(jobs_reassigned) AS reassigned,
                   sum(jobs_completed) AS completed, sum(jobs_repeat_visited) AS repeated,
                   sum(repeat_visits) AS visits, coalesce(sum(r.reopened), 0) AS reopened
            FROM f LEFT JOIN reopened r USING (request_id) GROUP BY k HAVING sum(jobs_seen) > 0)
        SELECT g.*, (SELECT map(list(reason ORDER BY reason), list(n ORDER BY reason)) FROM reasons
                     WHERE reasons.k IS NOT DISTINCT FROM g.k) FROM g"""
    rows = []
    for k, jobs, reassigned, completed, repeated, visits, reopened_n, reasons in cur.execute(
        sql, {**params, "reopened_ids": list(reopened), "reopened_counts": list(reopened.values())}
    ).fetchall():
        rows.append(
            {
                "key": _present(k, group_by),
                "jobs": int(jobs),
                "reassigned_pct": rounded(percentage(int(reassigned), int(jobs))),
                "repeat_visit_pct": rounded(percentage(int(repeated), int(completed))),
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
    for k, path, n, m, low, high, p90_value, ids, cohort in cur.execute(
        sql, _params(as_of, window, dealer_id)
    ).fetchall():
        rows.append(
            {
                "key": _present(k, group_by),
                "path": json.loads(path),
                "requests": n,
                "share_pct": _pct(n, int(cohort)),
                "median_minutes": _median_minutes(m, low, high),  # of the paths with a duration
                "p90_minutes": _p90_minutes(m, p90_value),
                "request_ids": list(ids),
            }
        )
    return sorted(rows, key=lambda row: (row["key"], -row["requests"], row["path"]))


# --- findings --------------------------------------------------------------------------------------------


def _kth_without(
    everyone: np.ndarray,
    keyed: np.ndarray,
    span: int,
    lowest: int,
    keys: np.ndarray,
    firsts: np.ndarray,
    ranks: np.ndarray,
) -> np.ndarray:
    """For each key, the `rank`-th smallest (1-based) of `everyone` once the key's own durations are taken out.

    One binary search over `everyone`'s positions for all keys at once: the others at or below a value are
    everyone's (searchsorted on `everyone`) less the key's own (searchsorted on `keyed`, the rows ordered by
    key then duration, encoded key × span + duration - lowest so that one sorted array holds every key's slice)."""
    low, high = np.zeros(len(keys), dtype=np.int64), np.full(len(keys), len(everyone) - 1, dtype=np.int64)
    while (active := low < high).any():
        middle = (low + high) // 2
        value = everyone[middle]
        mine = np.searchsorted(keyed, keys * span + (value - lowest), "right") - firsts
        enough = np.searchsorted(everyone, value, "right") - mine >= ranks
        high = np.where(active & enough, middle, high)
        low = np.where(active & ~enough, middle + 1, low)
    return everyone[low]


def _peer_medians(durations: np.ndarray, counts: list[int], chosen: list[int]) -> list[Fraction]:
    """The median of everyone else's durations for each chosen key (an index into `counts`): `durations` are the
    rows ordered by key then duration, `counts` each key's number of rows in that order."""
    everyone = np.sort(durations)
    lowest, span = int(everyone[0]), int(everyone[-1]) - int(everyone[0]) + 1
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    if len(counts) * span >= 2**62:  # the encoding would overflow (never at real scales): one key at a time
        medians = []
        for i in chosen:
            others = np.sort(np.concatenate([durations[: starts[i]], durations[starts[i] + counts[i] :]]))
            medians.append(Fraction(int(others[(len(others) - 1) // 2]) + int(others[len(others) // 2]), 2))
        return medians
    key_of_row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    keyed = key_of_row * span + (durations - lowest)
    keys = np.array(chosen, dtype=np.int64)
    firsts = starts[keys]
    n = len(everyone) - np.array(counts, dtype=np.int64)[keys]
    low = _kth_without(everyone, keyed, span, lowest, keys, firsts, (n + 1) // 2)
    high = _kth_without(everyone, keyed, span, lowest, keys, firsts, n // 2 + 1)
    return [Fraction(int(a) + int(b), 2) for a, b in zip(low, high)]


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


def _floor(bar: Fraction) -> int:
    """d > bar ⇔ d > ⌊bar⌋ for an integer d."""
    return bar.numerator // bar.denominator


def finding_rows(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    group_by: GroupBy,
    as_of: int | None = None,
    dealer_id: str | None = None,
    rules: FindingRules | None = None,
) -> list[dict]:
    """`GET /v1/views/process-findings` (see `process.finding_rows`)."""
    rules = FindingRules() if rules is None else rules
    params = _params(as_of, window, dealer_id)
    medians: dict[object, dict[str, tuple[int, Fraction | None]]] = {}
    for r in cur.execute(_step_stats(tables, group_by, dealer_id), params).fetchall():
        medians[r[0]] = {
            s: (r[1 + 5 * i] or 0, _median(r[1 + 5 * i] or 0, *r[2 + 5 * i : 4 + 5 * i])) for i, s in enumerate(STEPS)
        }
    found: list[dict] = []

    slow = [
        (key, step, Fraction(target) * MICROS_PER_MINUTE)
        for key in medians
        for step, target in rules.handoff_targets.items()
        if medians[key][step][0]
        and (medians[key][step][1] or 0) > Fraction(target) * MICROS_PER_MINUTE  # n > 0: a median
    ]
    for (key, step, _), (n, ids) in zip(
        slow,
        _over(
            cur, tables, group_by, dealer_id, params, [(k, s, _floor(b)) for k, s, b in slow], rules.request_id_limit
        ),
    ):
        count, median = medians[key][step]
        target = rules.handoff_targets[step]
        found.append(
            _finding_of(
                "slow_handoff",
                _present(key, group_by),
                count,
                ids,
                rules,
                f"{step} takes {rounded_minutes(median)} min (median) against a target of {target} min",
                step=step,
                owner=STEP_OWNERS[step],
                median_minutes=rounded_minutes(median),
                target_minutes=target,
                total=n,
            )
        )

    if group_by not in (GroupBy.all, GroupBy.day, GroupBy.month):
        found += _slower_than_peers(cur, tables, group_by, dealer_id, params, medians, rules)

    key, has_key = _REQUEST_KEYS[group_by]
    cohort = f"FROM {tables.requests} WHERE {_VALID} AND {has_key}{_scope(dealer_id)} AND {_COHORT}"
    for k, jobs, n, ids in cur.execute(
        f"SELECT {key} AS k, sum(jobs_ping_pong), count(*), "
        f"min(request_id, {int(rules.request_id_limit)}) {cohort} AND jobs_ping_pong > 0 "
        f"GROUP BY k",
        params,
    ).fetchall():
        found.append(
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
        )
    sql = f"""
        WITH r AS (SELECT {key} AS k, request_id, failed_visit_reasons AS fr, customer_waits AS cw,
                          unnest(json_keys(failed_visit_reasons)) AS reason {cohort} AND repeat_visits > 0)
        SELECT k, reason, sum(CAST(json_extract(fr, '$."' || reason || '"') AS BIGINT)), count(*),
               min(request_id, {int(rules.request_id_limit)}),
               coalesce(sum(CAST(json_extract(cw, '$."' || reason || '"') AS BIGINT)), 0)
        FROM r GROUP BY k, reason"""
    for k, reason, visits, n, ids, waited in cur.execute(sql, params).fetchall():
        row = repeat_visit_finding(
            _present(k, group_by), int(visits), ids, rules, reason, reason in CUSTOMER_SIDE, int(waited)
        )
        found.append({**row, "requests": n})
    return sorted(found, key=lambda f: (KIND_ORDER.index(f["kind"]), f["key"], f["step"] or "", f["reason"] or ""))


def _finding_of(
    kind: str, key: str, count: int, ids: list[str], rules: FindingRules, detail: str, total: int | None = None, **extra
) -> dict:
    row = _finding(kind, key, count, ids, rules, detail, **extra)
    if total is not None:
        row["requests"] = total
    return row


def _durations_by_key(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    order: list,
    steps: list[str],
) -> dict[str, np.ndarray]:
    """For each step, the cohort's durations on it ordered by key (in `order`: the keys sorted, None last) then
    duration. One scan for every step, each row's key as its position in `order` (a join on the key list), and
    the ordering in numpy: a query per step ordering (key, duration) in the engine cost ~120 ms of CPU each at
    500k requests over 12 months."""
    if not steps:
        return {}
    named = [k for k in order if k is not None]
    columns = ", ".join(f"{_duration(s)} AS d_{s}" for s in steps)
    sql = (
        f"WITH f AS ({_cohort(tables, group_by, dealer_id, _STEP_COLUMNS)}), "
        f"c AS (SELECT unnest($keys) AS key, unnest(range(len($keys))) AS code) "
        f"SELECT coalesce(c.code, {len(named)}) AS code, {columns} FROM f LEFT JOIN c ON f.k = c.key"
    )
    rows = cur.execute(sql, {**params, "keys": named}).fetchnumpy()
    codes = np.asarray(rows["code"], dtype=np.int64)
    found = {}
    for step in steps:
        column = rows[f"d_{step}"]
        present = ~np.ma.getmaskarray(column)
        durations, keys = np.ma.getdata(column)[present].astype(np.int64), codes[present]
        if not len(durations):
            found[step] = durations
            continue
        lowest, span = int(durations.min()), int(durations.max()) - int(durations.min()) + 1
        if (len(named) + 1) * span < 2**62:  # (key, duration) as one integer: one plain sort, 3× a lexsort's speed
            keyed = np.sort(keys * span + (durations - lowest))
            found[step] = keyed % span + lowest
        else:
            found[step] = durations[np.lexsort((durations, keys))]
    return found


def _slower_than_peers(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    group_by: GroupBy,
    dealer_id: str | None,
    params: dict,
    medians: dict,
    rules: FindingRules,
) -> list[dict]:
    compared: dict[str, list] = {}  # step → the keys with enough requests on it, and enough others
    for step in STEPS:
        everyone_n = sum(m[step][0] for m in medians.values())
        keys = [
            k
            for k, m in medians.items()
            if m[step][0] >= rules.peer_min_requests and everyone_n - m[step][0] >= rules.peer_min_requests
        ]
        if keys:
            compared[step] = keys
    order = sorted(k for k in medians if k is not None) + ([None] if None in medians else [])
    position = {key: i for i, key in enumerate(order)}
    candidates = []
    for step, durations in _durations_by_key(cur, tables, group_by, dealer_id, params, order, list(compared)).items():
        keys = compared[step]
        peer_medians = _peer_medians(
            durations, [medians[key][step][0] for key in order], [position[key] for key in keys]
        )
        for key, peer_median in zip(keys, peer_medians):
            count, median = medians[key][step]
            bar = rules.peer_factor * peer_median
            if median < bar or median - peer_median < rules.peer_margin_minutes * MICROS_PER_MINUTE:
                continue
            candidates.append((key, step, bar, peer_median))
    found = []
    for (key, step, _, peer_median), (n, ids) in zip(
        candidates,
        _over(
            cur,
            tables,
            group_by,
            dealer_id,
            params,
            [(k, s, _floor(b)) for k, s, b, _ in candidates],
            rules.request_id_limit,
        ),
    ):
        count, median = medians[key][step]
        found.append(
            _finding_of(
                "slower_than_peers",
                _present(key, group_by),
                count,
                ids,
                rules,
                f"{step} takes {rounded_minutes(median)} min (median) against {rounded_minutes(peer_median)} min "
                f"for the others",
                step=step,
                owner=STEP_OWNERS[step],
                median_minutes=rounded_minutes(median),
                peer_median_minutes=rounded_minutes(peer_median),
                total=n,
            )
        )
    return found
