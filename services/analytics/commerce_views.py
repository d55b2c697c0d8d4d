"""The reference rows of the paid-service and part-wait views (design.md, analytics; `commerce.py` for the
definitions), over the same cohort and keys as the throughput and process views: requests received in the
window, keyed as the throughput view keys them. Pure: the SQL (`commerce_sql`) is held equal to these row by
row by the property tests.

- Paid service, per key and currency: quotes issued, accepted, declined and expired (see `commerce`),
  `acceptance_rate_pct` = accepted / (accepted + declined + expired) × 100 (quotes still pending or replaced
  are not decided; null when none is), `revenue` = the accepted quotes' totals, a decimal string to the cent.
  Requests with no quote are left out; a key with none has no row.
- Part waits, per key and part number: part requests, `waiting` (those that could not be served from the van),
  `received` (waiting ones received, whose wait is measured), median / nearest-rank p90 / total wait minutes;
  per key the parts that made jobs wait longest in total first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from services.analytics.metrics import Window, median, p90, percentage, rounded, rounded_minutes
from services.analytics.process import ProcessTrail, cohort_by_key
from services.analytics.views import GroupBy

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, ROUND_HALF_UP))


def paid_service_rows(trails: Iterable[ProcessTrail], window: Window, group_by: GroupBy) -> list[dict]:
    """Rows of `GET /v1/views/paid-service`, by key then currency."""
    rows = []
    for key, group in cohort_by_key(trails, window, group_by).items():
        by_currency: dict[str | None, list] = defaultdict(list)
        for trail in group:
            commerce = trail.commerce
            quotes = [q for q in commerce.quotes if q.issued or q.accepted_total is not None or q.declined or q.expired]
            if quotes:
                by_currency[commerce.currency].extend(quotes)
        for currency, quotes in sorted(by_currency.items(), key=lambda item: item[0] or ""):
            accepted = [q for q in quotes if q.accepted_total is not None]
            declined = sum(q.declined for q in quotes)
            expired = sum(q.expired for q in quotes)
            rows.append(
                {
                    "key": key,
                    "currency": currency,
                    "quotes_issued": sum(q.issued for q in quotes),
                    "accepted": len(accepted),
                    "declined": declined,
                    "expired": expired,
                    "acceptance_rate_pct": rounded(percentage(len(accepted), len(accepted) + declined + expired)),
                    "revenue": money(
                        sum((q.accepted_total.quantize(CENT, ROUND_HALF_UP) for q in accepted), Decimal(0))
                    ),
                }
            )
    return rows


def part_wait_rows(trails: Iterable[ProcessTrail], window: Window, group_by: GroupBy) -> list[dict]:
    """Rows of `GET /v1/views/part-waits`: per key, the longest total wait first (then by part number)."""
    rows = []
    for key, group in cohort_by_key(trails, window, group_by).items():
        by_part = defaultdict(list)
        for trail in group:
            for part_request in trail.commerce.part_requests:
                by_part[part_request.part_number].append(part_request)
        ranked = []
        for part_number, requests in by_part.items():
            waits = [r.wait_micros for r in requests if r.wait_micros is not None]
            ranked.append(
                (
                    -sum(waits),
                    part_number or "",
                    {
                        "key": key,
                        "part_number": part_number,
                        "part_requests": len(requests),
                        "waiting": sum(r.waiting for r in requests),
                        "received": len(waits),
                        "median_wait_minutes": rounded_minutes(median(waits)),
                        "p90_wait_minutes": rounded_minutes(p90(waits)),
                        "total_wait_minutes": rounded_minutes(sum(waits)),
                    },
                )
            )
        rows += [row for *_, row in sorted(ranked, key=lambda item: item[:2])]
    return rows
