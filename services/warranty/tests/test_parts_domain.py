"""The parts ledger's pure rules: stock is the fold of a location's movements and never goes below zero, a part
request is reserved at the technician's van, else his center, else a warehouse, or backordered, and a part
request moves backordered → reserved → shipped → received (never more received than shipped)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.warranty.parts_domain import JobContext, Part, PartRequest
from services.warranty.stock import Candidate, StockLocation, choose_location
from shared.contracts.warranty import LocationKind
from shared.domain import Conflict, InvalidTransition, RuleViolation

AT = datetime(2026, 5, 1, 9, tzinfo=UTC)
JOB = JobContext("J1", "R1", "SN-1", "D1", "T1", "C1")


def location(kind=LocationKind.warehouse, name="W1", **owner) -> StockLocation:
    loc = StockLocation.new(name)
    loc.register(kind, owner.get("center_id"), owner.get("technician_id"), "officer", AT)
    return loc


def refolded(loc: StockLocation) -> StockLocation:
    """The same location folded afresh from the events it recorded (what a rebuild does)."""
    return StockLocation.rehydrate(loc.id, [(p.data, p.occurred_at) for p in loc.pending])


def test_stock_is_the_fold_of_receipts_transfers_reservations_shipments_deliveries_and_issues():
    warehouse, van = location(), location(LocationKind.van, "V1", technician_id="T1")
    warehouse.receive("r1", "P1", 10, "DN-1", "officer", AT)
    warehouse.transfer_out("t1", "V1", "P1", 3, "officer", AT)
    van.transfer_in("t1", "W1", "P1", 3, "officer", AT)
    warehouse.reserve("pr1", "J1", "P1", 4, AT)
    assert warehouse.level("P1").on_hand == 7 and warehouse.level("P1").reserved == 4
    assert warehouse.ship("pr1", "V1", AT) == 4
    van.deliver("pr1", "J1", "P1", 4, "W1", AT)
    van.issue("s1", "J1", "SN-1", "P1", 5, AT)  # the job's 4 reserved first, then 1 of the 3 available

    assert (warehouse.level("P1").on_hand, warehouse.level("P1").reserved, warehouse.level("P1").available) == (3, 0, 3)
    assert (van.level("P1").on_hand, van.level("P1").reserved, van.level("P1").available) == (2, 0, 2)
    for loc in (warehouse, van):
        assert refolded(loc).level("P1") == loc.level("P1")


def test_taking_more_than_is_available_is_refused_naming_what_is_there_and_records_nothing():
    warehouse = location()
    warehouse.receive("r1", "P1", 2, None, "officer", AT)
    warehouse.reserve("pr1", "J1", "P1", 1, AT)
    recorded = len(warehouse.pending)
    with pytest.raises(Conflict) as refused:
        warehouse.transfer_out("t1", "W2", "P1", 2, "officer", AT)
    assert refused.value.extra == {
        "location_id": "W1",
        "part_number": "P1",
        "on_hand": 2,
        "reserved": 1,
        "available": 1,
    }
    with pytest.raises(Conflict):
        warehouse.reserve("pr2", "J2", "P1", 2, AT)
    assert len(warehouse.pending) == recorded and warehouse.level("P1").available == 1


def test_a_swap_from_a_van_without_the_part_is_a_conflict_saying_what_the_van_holds():
    van = location(LocationKind.van, "V1", technician_id="T1")
    van.receive("r1", "P1", 1, None, "officer", AT)
    van.reserve("pr-other", "J2", "P1", 1, AT)  # another job's reservation is not this job's to use
    with pytest.raises(Conflict) as refused:
        van.issue("s1", "J1", "SN-1", "P1", 1, AT)
    assert "no stock in the van" in refused.value.detail
    assert (refused.value.extra["on_hand"], refused.value.extra["available"]) == (1, 0)


def test_a_swap_uses_its_own_jobs_reservation_before_what_is_available():
    van = location(LocationKind.van, "V1", technician_id="T1")
    van.receive("r1", "P1", 3, None, "officer", AT)
    van.reserve("pr1", "J1", "P1", 2, AT)
    van.issue("s1", "J1", "SN-1", "P1", 1, AT)
    assert van.pending[-1].data.from_reservations == {"pr1": 1}
    assert (van.level("P1").on_hand, van.level("P1").reserved) == (2, 1)


@pytest.mark.parametrize("quantity", [0, -1])
def test_a_quantity_below_one_is_a_rule_violation_naming_quantity(quantity):
    with pytest.raises(RuleViolation) as refused:
        location().receive("r1", "P1", quantity, None, "officer", AT)
    assert refused.value.field == "quantity"


def test_a_van_names_its_technician_and_a_center_store_its_center():
    with pytest.raises(RuleViolation) as van:
        location(LocationKind.van, "V1")
    with pytest.raises(RuleViolation) as center:
        location(LocationKind.center_store, "S1")
    assert (van.value.field, center.value.field) == ("technician_id", "center_id")


def test_the_van_comes_first_then_the_center_then_a_warehouse_each_only_with_the_whole_quantity():
    van = Candidate("V1", LocationKind.van, 1)
    center = Candidate("S1", LocationKind.center_store, 2)
    warehouses = [Candidate("W2", LocationKind.warehouse, 5), Candidate("W1", LocationKind.warehouse, 3)]
    everything = [*warehouses, center, van]
    assert choose_location(everything, 1) == van
    assert choose_location(everything, 2) == center
    assert choose_location(everything, 3) == Candidate("W1", LocationKind.warehouse, 3)  # first by id with 3
    assert choose_location(everything, 4) == Candidate("W2", LocationKind.warehouse, 5)
    assert choose_location(everything, 6) is None  # backordered
    assert choose_location([], 1) is None


def opened(reserved_at: Candidate | None) -> PartRequest:
    request = PartRequest.new("pr1")
    request.open(JOB, "P1", 2, "T1", AT, reserved_at, "none available")
    return request


def test_a_part_request_is_backordered_then_reserved_shipped_and_received_in_parts():
    request = opened(None)
    assert request.status == "backordered"
    request.fill("W1", LocationKind.warehouse, "T1", AT)
    request.ship("V1", 2, "clerk", AT)
    assert request.receive(1, "T1", AT) == 1 and request.status == "shipped"
    with pytest.raises(RuleViolation) as too_many:
        request.receive(2, "T1", AT)
    assert too_many.value.field == "quantity" and too_many.value.extra == {"shipped": 2, "received": 1}
    assert request.receive(None, "T1", AT) == 1 and request.status == "received"
    folded = PartRequest.rehydrate(request.id, [(p.data, p.occurred_at) for p in request.pending])
    assert (folded.status, folded.shipped, folded.received, folded.location_id) == ("received", 2, 2, "W1")


def test_a_request_reserved_in_the_van_has_nothing_to_ship_and_an_unshipped_one_nothing_to_receive():
    in_van = opened(Candidate("V1", LocationKind.van, 5))
    with pytest.raises(InvalidTransition):
        in_van.ship("V1", 2, "clerk", AT)
    with pytest.raises(InvalidTransition):
        in_van.receive(1, "T1", AT)
    with pytest.raises(InvalidTransition):
        opened(Candidate("W1", LocationKind.warehouse, 5)).fill("W1", LocationKind.warehouse, "T1", AT)


def test_re_registering_a_part_re_prices_it_and_the_same_registration_records_nothing():
    part = Part.new("P1")
    assert part.register("Pump", "pump", Decimal("10.00"), "EUR", "officer", AT)
    assert not part.register("Pump", "pump", Decimal("10.00"), "EUR", "officer", AT)
    assert part.register("Pump", "pump", Decimal("12.50"), "EUR", "officer", AT)
    assert [p.data.unit_price for p in part.pending] == [Decimal("10.00"), Decimal("12.50")]


def test_releasing_frees_what_a_request_still_holds_and_a_released_request_moves_no_further():
    warehouse = location()
    warehouse.receive("r1", "P1", 3, None, "officer", AT)
    warehouse.reserve("pr1", "J1", "P1", 2, AT)
    assert warehouse.release("pr1", AT) == 2 and warehouse.release("pr1", AT) == 0
    assert warehouse.level("P1") == refolded(warehouse).level("P1")
    assert (warehouse.level("P1").on_hand, warehouse.level("P1").available) == (3, 3)
    request = opened(Candidate("W1", LocationKind.warehouse, 3))
    assert request.holding_location == "W1"
    request.release(2, "W1", "job J1 was completed fixed", AT)
    assert request.status == "released" and request.holding_location is None
    with pytest.raises(InvalidTransition):
        request.ship("V1", 2, "clerk", AT)
    with pytest.raises(InvalidTransition):
        request.release(0, None, "again", AT)
