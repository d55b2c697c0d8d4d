"""The process view's and the exports' reads from the DuckDB projection: the stored events of a window's cohort
(for the reference functions of `process.py`), and the stored events of a window as a stream (for the writers
of `exports.py`) — both `as_of` a recorded moment (events recorded by then) and, for a dealer, over its own
requests only (by the `dealer_id` of their `service_request.received`; a dealer-less request is nobody's)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import duckdb

from services.analytics.metrics import Window
from services.analytics.projection import READ_BACK_SELECT, Tables, event_of
from services.analytics.records import RECEIVED, AnalyticsEvent

FETCH_ROWS = 5000  # rows per fetch of a streamed export: memory stays flat whatever the window


def _as_of(as_of: int | None) -> tuple[str, dict]:
    return ("", {}) if as_of is None else (" AND e.recorded_at <= $t", {"t": as_of})


def cohort_events(
    cur: duckdb.DuckDBPyConnection, tables: Tables, window: Window, as_of: int | None, dealer_id: str | None
) -> list[AnalyticsEvent]:
    """Every stored event of the requests received in the window (the cohort of the views), their jobs'
    events, and the events of the complaints about them (`complaint.reopened`… that name only their complaint
    included), as recorded by `as_of`."""
    recorded, params = _as_of(as_of)
    params.update(s=window.start, e=window.end)
    scope = ""
    if dealer_id is not None:
        scope, params["dealer"] = " AND e.dealer_id = $dealer", dealer_id
    sql = f"""
        WITH cohort AS (
            SELECT DISTINCT e.request_id FROM {tables.events} e
            WHERE e.type = '{RECEIVED}' AND e.time >= $s AND e.time < $e{recorded}{scope}),
        jobs AS (SELECT job_id FROM {tables.job_requests} WHERE request_id IN (SELECT request_id FROM cohort)),
        complaints AS (
            SELECT DISTINCT json_extract_string(e.data, '$.complaint_id') AS complaint_id FROM {tables.events} e
            WHERE e.type = 'complaint.opened'{recorded}
              AND (e.request_id IN (SELECT request_id FROM cohort) OR e.job_id IN (SELECT job_id FROM jobs)))
        SELECT {READ_BACK_SELECT}, e.data FROM {tables.events} e
        WHERE TRUE{recorded} AND (e.request_id IN (SELECT request_id FROM cohort)
            OR e.job_id IN (SELECT job_id FROM jobs)
            OR (e.type LIKE 'complaint.%'
                AND json_extract_string(e.data, '$.complaint_id') IN (SELECT complaint_id FROM complaints)))"""
    events = []
    for row in cur.execute(sql, params).fetchall():
        event = event_of(row[:-1])
        if event.type.startswith("complaint."):  # complaint events the facts do not fold keep only a payload
            event = AnalyticsEvent(
                event.event_id,
                event.type,
                event.request_id,
                event.job_id,
                event.time,
                event.recorded_at,
                event.sequence,
                event.data,
                payload=json.loads(row[-1]),
            )
        events.append(event)
    return events


def window_events(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    as_of: int | None,
    dealer_id: str | None,
    by_request: bool = False,
) -> Iterator[AnalyticsEvent]:
    """Every stored event whose business time is in the window, streamed in business order — or, with
    `by_request`, grouped by the request it belongs to (its own, its job's, or for a complaint event naming
    neither, its complaint's) then in business order, each event's `request_id` set to that request. The cursor
    is closed when the stream ends or is dropped."""
    recorded, params = _as_of(as_of)
    params.update(s=window.start, e=window.end)
    owner = "COALESCE(e.request_id, j.request_id, c.request_id)"
    scope = ""
    if dealer_id is not None:
        scope = (
            f" AND {owner} IN (SELECT r.request_id FROM {tables.events} r WHERE r.type = '{RECEIVED}' "
            f"AND r.dealer_id = $dealer)"
        )
        params["dealer"] = dealer_id
    order = f"{owner}, e.time, e.sequence, e.event_id" if by_request else "e.time, e.sequence, e.event_id"
    sql = (
        f"SELECT {owner}, {READ_BACK_SELECT}, e.topic, e.subject, e.data FROM {tables.events} e "
        f"LEFT JOIN {tables.job_requests} j ON e.job_id = j.job_id "
        f"LEFT JOIN (SELECT json_extract_string(o.data, '$.complaint_id') AS complaint_id, "
        f"any_value(COALESCE(o.request_id, oj.request_id)) AS request_id FROM {tables.events} o "
        f"LEFT JOIN {tables.job_requests} oj ON o.job_id = oj.job_id WHERE o.type = 'complaint.opened' "
        f"GROUP BY 1) c ON e.request_id IS NULL AND e.job_id IS NULL AND e.type LIKE 'complaint.%' "
        f"AND json_extract_string(e.data, '$.complaint_id') = c.complaint_id "
        f"WHERE e.time >= $s AND e.time < $e{recorded}{scope} ORDER BY {order}"
    )
    try:
        result = cur.execute(sql, params)
        while rows := result.fetchmany(FETCH_ROWS):
            for row in rows:
                event = event_of(row[1:-3])
                yield AnalyticsEvent(
                    event.event_id,
                    event.type,
                    row[0] if by_request else event.request_id,
                    event.job_id,
                    event.time,
                    event.recorded_at,
                    event.sequence,
                    event.data,
                    topic=row[-3],
                    subject=row[-2],
                    payload=json.loads(row[-1]),
                )
    finally:
        cur.close()
