"""Paid service and waiting for parts, folded per request with its other facts (design.md: intake "Paid service",
warranty "Parts", analytics' process view): the fields of `RequestFact` that the process view's new steps and
the paid-service and part-wait views read. Folded with the rest of the request so that they are versioned alike
and `as_of` stays a predicate on the fact rows.

Kept apart from the fold of the repair chain (`facts`, `fold`): both call `commerce_fields` over the request's
own quote and part-request events, whatever their order (duplicates by event id once). The views' reference
(`commerce.py`) states the same definitions a second time, independently; the property tests hold the SQL over
these fields equal to it. Pure: no I/O.

Definitions (times are event `time`s; "first" is the minimum in business order):

- quotes: distinct `quote_id`s issued, accepted, declined, and expired — an expiry withdrawn by a
  `quote_expiry_withdrawn` of the same quote does not count (the late-synced acceptance that withdrew it
  does). Revenue: the sum of the accepted quotes' totals (each accepted quote once, its first acceptance), in
  cents; currency: the first acceptance's, else the first issued quote's.
- `quoting` step: the first `quote_required` → the first `quote_issued` (owner hotline).
- `customer_decision` step: the first `quote_issued` → the first decision (an acceptance, a decline, or an
  expiry that was not withdrawn) (owner customer).
- part requests: a part request *waits* when it could not be served from the technician's van: it was
  backordered, or reserved at a location that is not a van. Its wait runs from its first `reserved` or
  `backordered` to its first `received`.
- `parts_wait` step: from the start of the request's first waiting part request to the last first-receipt of
  its waiting part requests (owner warehouse); measured when both exist."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from services.analytics.records import (
    PART_BACKORDERED,
    PART_RECEIVED,
    PART_RESERVED,
    QUOTE_ACCEPTED,
    QUOTE_DECLINED,
    QUOTE_EXPIRED,
    QUOTE_EXPIRY_WITHDRAWN,
    QUOTE_ISSUED,
    QUOTE_REQUIRED,
    AnalyticsEvent,
)

VAN = "van"


def cents(total: str | None) -> int:
    """A decimal money string in cents (half away from zero beyond the cent, which intake never sends)."""
    return int((Decimal(total or "0") * 100).to_integral_value(ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class CommerceFields:
    """One request's quotes and part requests, as the views need them (times in µs)."""

    quote_required_at: int | None = None
    quote_issued_at: int | None = None  # the first quote issued
    quote_decided_at: int | None = None  # the first acceptance, decline or expiry not withdrawn
    quotes_issued: int = 0
    quotes_accepted: int = 0
    quotes_declined: int = 0
    quotes_expired: int = 0
    revenue_cents: int = 0  # the accepted quotes' totals
    currency: str | None = None
    parts_wait_from: int | None = None
    parts_wait_to: int | None = None
    # JSON [{"id", "part", "waiting", "wait"}] per part request, by id; wait in µs (null: not measured)
    part_requests: str = "[]"


def commerce_fields(events: Iterable[AnalyticsEvent]) -> CommerceFields:
    """The fields from a request's own quote and part-request events (other types are ignored)."""
    ordered = sorted({e.event_id: e for e in events}.values(), key=lambda e: e.chronological)
    first: dict[str, int] = {}
    issued: set[str] = set()
    accepted: dict[str, AnalyticsEvent] = {}
    declined: set[str] = set()
    expired: dict[str, int] = {}
    withdrawn: set[str] = set()
    currency = None
    parts: dict[str, dict] = {}
    for e in ordered:
        quote = e.data.get("quote_id")
        first.setdefault(e.type, e.time)
        if e.type == QUOTE_ISSUED:
            issued.add(quote)
            if currency is None:
                currency = e.data.get("currency")
        elif e.type == QUOTE_ACCEPTED:
            accepted.setdefault(quote, e)
        elif e.type == QUOTE_DECLINED:
            declined.add(quote)
        elif e.type == QUOTE_EXPIRED:
            expired.setdefault(quote, e.time)
        elif e.type == QUOTE_EXPIRY_WITHDRAWN:
            withdrawn.add(quote)
        elif e.type in (PART_RESERVED, PART_BACKORDERED, PART_RECEIVED):
            part = parts.setdefault(
                e.data.get("part_request_id"), {"part": e.data.get("part_number"), "start": None, "end": None}
            )
            if e.type == PART_RECEIVED:
                if part["end"] is None:
                    part["end"] = e.time
                continue
            if part["start"] is None:
                part["start"] = e.time
            if e.type == PART_BACKORDERED or e.data.get("location_kind") != VAN:
                part["waiting"] = True
    if accepted:
        currency = min(accepted.values(), key=lambda e: e.chronological).data.get("currency")
    decisions = [e.time for e in accepted.values()]
    decisions += [e.time for e in ordered if e.type == QUOTE_DECLINED]
    decisions += [at for quote, at in expired.items() if quote not in withdrawn]
    waiting = [p for p in parts.values() if p.get("waiting")]
    starts = [p["start"] for p in waiting if p["start"] is not None]
    ends = [p["end"] for p in waiting if p["end"] is not None]
    rows = [
        {
            "id": part_request_id,
            "part": p["part"],
            "waiting": bool(p.get("waiting")),
            "wait": p["end"] - p["start"] if p.get("waiting") and None not in (p["start"], p["end"]) else None,
        }
        for part_request_id, p in sorted(parts.items())
    ]
    return CommerceFields(
        quote_required_at=first.get(QUOTE_REQUIRED),
        quote_issued_at=first.get(QUOTE_ISSUED),
        quote_decided_at=min(decisions, default=None),
        quotes_issued=len(issued),
        quotes_accepted=len(accepted),
        quotes_declined=len(declined),
        quotes_expired=len(set(expired) - withdrawn),
        revenue_cents=sum(cents(e.data.get("total")) for e in accepted.values()),
        currency=currency,
        parts_wait_from=min(starts, default=None),
        parts_wait_to=max(ends, default=None),
        part_requests=json.dumps(rows, separators=(",", ":"), sort_keys=True),
    )
