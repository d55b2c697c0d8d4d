"""The paid-service and part-wait views as SQL over the versioned request facts in DuckDB (`commerce_facts`'
fields), equal row by row to the reference (`commerce_views`): cohort, keys, dealer scope and `as_of` as the
throughput and process views (the request fact versions valid at that recorded moment, received in
`[from, to)`); the engine sums and sorts, Python turns the integers into a row's rounded numbers."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from services.analytics.commerce_views import money
from services.analytics.metrics import Window, percentage, rounded, rounded_minutes
from services.analytics.process_sql import _cohort
from services.analytics.projection import Tables
from services.analytics.sqlviews import _median, _order_stats, _p90, _params, _present
from services.analytics.views import GroupBy

_QUOTED = "quotes_issued + quotes_accepted + quotes_declined + quotes_expired > 0"
# One part request of the facts' JSON list (commerce_facts.CommerceFields.part_requests).
_PART_REQUEST = '[{"id": "VARCHAR", "part": "VARCHAR", "waiting": "BOOLEAN", "wait": "BIGINT"}]'


def paid_service_rows(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    group_by: GroupBy,
    as_of: int | None = None,
    dealer_id: str | None = None,
) -> list[dict]:
    """`GET /v1/views/paid-service` (see `commerce_views.paid_service_rows`)."""
    columns = "currency, quotes_issued, quotes_accepted, quotes_declined, quotes_expired, revenue_cents"
    sql = f"""
        WITH f AS ({_cohort(tables, group_by, dealer_id, columns)} AND {_QUOTED})
        SELECT k, currency, sum(quotes_issued), sum(quotes_accepted), sum(quotes_declined), sum(quotes_expired),
               sum(revenue_cents)
        FROM f GROUP BY k, currency"""
    rows = []
    for k, currency, issued, accepted, declined, expired, cents in cur.execute(
        sql, _params(as_of, window, dealer_id)
    ).fetchall():
        accepted, declined, expired = int(accepted), int(declined), int(expired)
        rows.append(
            {
                "key": _present(k, group_by),
                "currency": currency,
                "quotes_issued": int(issued),
                "accepted": accepted,
                "declined": declined,
                "expired": expired,
                "acceptance_rate_pct": rounded(percentage(accepted, accepted + declined + expired)),
                "revenue": money(Decimal(int(cents)).scaleb(-2)),
            }
        )
    return sorted(rows, key=lambda row: (row["key"], row["currency"] or ""))


def part_wait_rows(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    window: Window,
    group_by: GroupBy,
    as_of: int | None = None,
    dealer_id: str | None = None,
) -> list[dict]:
    """`GET /v1/views/part-waits` (see `commerce_views.part_wait_rows`)."""
    sql = f"""
        WITH f AS ({_cohort(tables, group_by, dealer_id, "part_requests")} AND part_requests <> '[]'),
        p AS (SELECT k, unnest(from_json(part_requests, '{_PART_REQUEST}'), recursive := true) FROM f),
        g AS (SELECT k, part, count(*) AS n, count(*) FILTER (WHERE waiting) AS waiting,
                     coalesce(list_sort(list(wait) FILTER (WHERE wait IS NOT NULL)), CAST([] AS BIGINT[])) AS d
              FROM p GROUP BY k, part)
        SELECT k, part, n, waiting, {_order_stats("d")}, coalesce(list_sum(d), 0) FROM g"""
    rows = []
    for k, part, n, waiting, measured, low, high, p90_value, total in cur.execute(
        sql, _params(as_of, window, dealer_id)
    ).fetchall():
        rows.append(
            {
                "key": _present(k, group_by),
                "part_number": part,
                "part_requests": int(n),
                "waiting": int(waiting),
                "received": int(measured),
                "median_wait_minutes": rounded_minutes(_median(measured, low, high)),
                "p90_wait_minutes": rounded_minutes(_p90(measured, p90_value)),
                "total_wait_minutes": rounded_minutes(int(total)),
                "_total": int(total),
            }
        )
    rows.sort(key=lambda row: (row["key"], -row["_total"], row["part_number"] or ""))
    for row in rows:
        del row["_total"]
    return rows
