"""The reference of paid service and waiting for parts, per request (design.md: intake "Paid service", warranty
"Parts", analytics' process view), stated straight from a request's events with no I/O: quote by quote and
part request by part request. The SQL views read the fields `commerce_facts` folds; the property tests hold
them equal to the rows built on this (`commerce_views`).

- A quote (by `quote_id`) is issued, accepted, declined, or expired; an expiry that a
  `quote_expiry_withdrawn` of the same quote withdrew does not count.
- `quoting` (owner hotline): the first `quote_required` → the first `quote_issued`.
- `customer_decision` (owner customer): the first `quote_issued` → the first acceptance, decline or
  expiry that was not withdrawn.
- A part request waits when it could not be served from the technician's van (backordered, or reserved at a
  warehouse or center); its wait: its first reservation or backorder → its first receipt.
- `parts_wait` (owner warehouse): the request's first waiting part request's start → the last first-receipt
  of its waiting part requests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from services.analytics.records import COMMERCE_TYPES, AnalyticsEvent

# The steps these add to the process view, with the party that owns the wait.
COMMERCE_STEP_OWNERS = {"quoting": "hotline", "customer_decision": "customer", "parts_wait": "warehouse"}


@dataclass(frozen=True, slots=True)
class Quote:
    quote_id: str
    issued: bool
    accepted_total: Decimal | None  # the first acceptance's total (None: not accepted)
    accepted_currency: str | None
    accepted_order: tuple | None  # business order of the first acceptance
    issued_currency: str | None
    issued_order: tuple | None
    declined: bool
    expired: bool  # and not withdrawn


@dataclass(frozen=True, slots=True)
class PartRequest:
    part_request_id: str
    part_number: str | None
    waiting: bool
    wait_micros: int | None  # first receipt − start, for a waiting one with both


@dataclass(frozen=True, slots=True)
class RequestCommerce:
    """One request's quotes and part requests, and the durations of the steps they add."""

    quotes: tuple[Quote, ...]
    part_requests: tuple[PartRequest, ...]
    steps: dict[str, int]

    @property
    def currency(self) -> str | None:
        accepted = [q for q in self.quotes if q.accepted_order is not None]
        if accepted:
            return min(accepted, key=lambda q: q.accepted_order).accepted_currency
        issued = [q for q in self.quotes if q.issued_order is not None]
        return min(issued, key=lambda q: q.issued_order).issued_currency if issued else None


def _first(events: Iterable[AnalyticsEvent]) -> AnalyticsEvent | None:
    return min(events, key=lambda e: e.chronological, default=None)


def request_commerce(events: Iterable[AnalyticsEvent]) -> RequestCommerce:
    """From a request's own events (others are ignored; duplicates by event id once)."""
    mine = [e for e in {e.event_id: e for e in events}.values() if e.type in COMMERCE_TYPES]
    by_quote: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    by_part: dict[str, list[AnalyticsEvent]] = defaultdict(list)
    for e in mine:
        if e.type.startswith("service_request.") and "quote_id" in e.data:
            by_quote[e.data["quote_id"]].append(e)
        elif e.type.startswith("part_request."):
            by_part[e.data["part_request_id"]].append(e)
    quotes = []
    for quote_id, evs in sorted(by_quote.items()):
        kinds = {e.type.rsplit("_", 1)[-1] for e in evs}  # issued, accepted, declined, expired, withdrawn
        acceptance = _first(e for e in evs if e.type.endswith("quote_accepted"))
        issue = _first(e for e in evs if e.type.endswith("quote_issued"))
        quotes.append(
            Quote(
                quote_id,
                "issued" in kinds,
                Decimal(acceptance.data["total"]) if acceptance else None,
                acceptance.data.get("currency") if acceptance else None,
                acceptance.chronological if acceptance else None,
                issue.data.get("currency") if issue else None,
                issue.chronological if issue else None,
                "declined" in kinds,
                "expired" in kinds and "withdrawn" not in kinds,
            )
        )
    parts = []
    wait_starts, wait_receipts = [], []  # of the part requests that waited
    for part_request_id, evs in sorted(by_part.items()):
        asked = [e for e in evs if e.type in ("part_request.reserved", "part_request.backordered")]
        waiting = any(e.type == "part_request.backordered" or e.data.get("location_kind") != "van" for e in asked)
        start = _first(asked)
        receipt = _first(e for e in evs if e.type == "part_request.received")
        if waiting:
            wait_starts.append(start.time)
            wait_receipts += [receipt.time] if receipt else []
        parts.append(
            PartRequest(
                part_request_id,
                _first(evs).data.get("part_number"),
                waiting,
                receipt.time - start.time if waiting and receipt else None,
            )
        )

    def first_time(event_type: str) -> int | None:
        found = _first(e for e in mine if e.type == event_type)
        return found.time if found else None

    issued_at = first_time("service_request.quote_issued")
    withdrawn = {e.data["quote_id"] for e in mine if e.type == "service_request.quote_expiry_withdrawn"}
    decisions = [
        e.time
        for e in mine
        if e.type in ("service_request.quote_accepted", "service_request.quote_declined")
        or (e.type == "service_request.quote_expired" and e.data["quote_id"] not in withdrawn)
    ]
    bounds = {
        "quoting": (first_time("service_request.quote_required"), issued_at),
        "customer_decision": (issued_at, min(decisions, default=None)),
        "parts_wait": (min(wait_starts, default=None), max(wait_receipts, default=None)),
    }
    steps = {s: end - start for s, (start, end) in bounds.items() if start is not None and end is not None}
    return RequestCommerce(tuple(quotes), tuple(parts), steps)
