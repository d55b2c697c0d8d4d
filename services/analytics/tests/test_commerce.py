"""The definitions of paid service and waiting for parts on small hand-worked histories, in both statements
(the per-request fold the SQL reads, `commerce_facts`, and the reference, `commerce`), and how the process
view's findings and variants see them."""

from __future__ import annotations

import json
import random

from services.analytics.commerce import request_commerce
from services.analytics.commerce_facts import commerce_fields
from services.analytics.process import FindingRules, finding_rows, process_trails, variant_rows
from services.analytics.tests.test_process import MIN, WINDOW, event, received, step, triaged
from services.analytics.views import GroupBy


def quote(kind: str, at: float, quote_id: str = "Q1", recorded: float | None = None, **data):
    return event(f"service_request.quote_{kind}", at, "r1", recorded=recorded, quote_id=quote_id, **data)


def part(kind: str, at: float, part_request_id: str, number: str = "P-PUMP", **data):
    return step(f"part_request.{kind}", "r1", at, part_request_id=part_request_id, part_number=number, **data)


def paid_history():
    """r1 (D1): a first quote replaced by a second; the second expired at 3000, but the customer had accepted
    it at 2900 (synced late, the expiry withdrawn). A belt came from the van at once; a pump was backordered
    at 3100, reserved at the warehouse at 3500 and received at 4000; a seal was backordered and never came."""
    return [
        received("r1", 0),
        triaged("r1", 10),
        event("service_request.quote_required", 10, "r1"),
        quote("issued", 40, "Q0", total="300.00", currency="EUR"),
        quote("issued", 100, "Q1", total="250.00", currency="EUR"),
        quote("expired", 3000, "Q1"),
        quote("expiry_withdrawn", 3000, "Q1", recorded=3100),
        quote("accepted", 2900, "Q1", recorded=3100, total="250.00", currency="EUR"),
        step("job.created", "r1", 2900, dealer_id="D1", region="north", product_line="baler"),
        step("job.assigned", "r1", 2950, center_id="C1", technician_id="T1"),
        part("reserved", 3050, "PR-belt", "P-BELT", location_kind="van"),
        part("backordered", 3100, "PR-pump"),
        part("reserved", 3500, "PR-pump", location_kind="warehouse"),
        part("received", 4000, "PR-pump"),
        part("backordered", 3200, "PR-seal", "P-SEAL"),
    ]


def test_a_withdrawn_expiry_leaves_the_acceptance_as_the_decision_and_only_parts_not_in_the_van_wait():
    events = paid_history()
    fields = commerce_fields(random.sample(events, len(events)))
    assert (fields.quotes_issued, fields.quotes_accepted, fields.quotes_declined, fields.quotes_expired) == (2, 1, 0, 0)
    assert (fields.revenue_cents, fields.currency) == (25_000, "EUR")
    assert (fields.quote_issued_at, fields.quote_decided_at) == (40 * MIN, 2900 * MIN)
    assert (fields.parts_wait_from, fields.parts_wait_to) == (3100 * MIN, 4000 * MIN)
    assert json.loads(fields.part_requests) == [
        {"id": "PR-belt", "part": "P-BELT", "waiting": False, "wait": None},
        {"id": "PR-pump", "part": "P-PUMP", "waiting": True, "wait": 900 * MIN},
        {"id": "PR-seal", "part": "P-SEAL", "waiting": True, "wait": None},
    ]
    reference = request_commerce(events)
    assert reference.steps == {"quoting": 30 * MIN, "customer_decision": 2860 * MIN, "parts_wait": 900 * MIN}
    assert [(p.part_request_id, p.waiting, p.wait_micros) for p in reference.part_requests] == [
        ("PR-belt", False, None),
        ("PR-pump", True, 900 * MIN),
        ("PR-seal", True, None),
    ]


def test_before_the_late_acceptance_synced_the_timers_expiry_was_the_decision():
    events = [e for e in paid_history() if e.recorded_at < 3100 * MIN]
    fields = commerce_fields(events)
    assert (fields.quotes_accepted, fields.quotes_expired, fields.revenue_cents) == (0, 1, 0)
    assert fields.quote_decided_at == 3000 * MIN
    assert request_commerce(events).steps["customer_decision"] == 2960 * MIN


def test_a_slow_parts_wait_is_a_finding_of_the_warehouse_and_the_path_shows_the_quote_and_the_parts():
    trails = process_trails(paid_history())
    (slow,) = finding_rows(trails, WINDOW, GroupBy.dealer, FindingRules({"parts_wait": 60}))
    assert (slow["kind"], slow["step"], slow["owner"], slow["request_ids"]) == (
        "slow_handoff",
        "parts_wait",
        "warehouse",
        ["r1"],
    )
    (variant,) = variant_rows(trails, WINDOW, GroupBy.all)
    assert variant["path"] == [
        "received",
        "triaged",
        "quoted",
        "quoted",
        "quote_accepted",
        "assigned",
        "quote_expired",  # the timer's, withdrawn later: the path shows what happened
        "part_backordered",
        "part_backordered",
        "part_received",
    ]
