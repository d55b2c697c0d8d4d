"""Events of `warranty.events`: products sold, warranty policies, coverage checks, part swaps, repairs, claims,
returns and the two-repair entitlement.

Keys / CloudEvents subjects: a unit's events (`product.registered`, `part.swapped`, `unit.*`, `return.rejected`)
are keyed by its `serial`, so that one unit's history stays in order on one partition; `warranty.checked` by
`request_id`; claims by `claim_id`; a product line's policy by `policy:<product_line>` (so that a product line
and a serial that share a name never share a stream).

Dates are ISO dates; `expires_on` / `covered_until` are the last day covered (inclusive). Money is a decimal
string (never a float) in the currency named beside it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import EventData, event
from shared.contracts.topics import WARRANTY


class CoverageBasis(StrEnum):
    """What a coverage verdict counted from."""

    registered_sale = "registered_sale"
    purchase_date = "purchase_date"  # the request's purchase date; the serial is not registered
    none = "none"  # no sale date known at all


class ReturnKind(StrEnum):
    return_ = "return"
    exchange = "exchange"


class ClaimReason(BaseModel):
    """One adjudication rule and its verdict on a claim (or an officer's override with its why)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rule: str = Field(
        description="coverage_valid | swaps_belong_to_job | filed_within_limit | defective_part_returned | "
        "officer_override"
    )
    ok: bool
    detail: str


@event("product.registered", topic=WARRANTY, subject="serial")
class ProductRegistered(EventData):
    """A unit was sold: its serial, model, product line, sale date and selling dealer."""

    serial: str
    model: str
    product_line: str
    sold_on: date
    dealer_id: str | None = None


@event("warranty_policy.set", topic=WARRANTY, subject="product_line")
class WarrantyPolicySet(EventData):
    """A product line's warranty for units sold from `effective_from` on (null: all). Key `policy:<line>`."""

    product_line: str
    months: int
    part_months: dict[str, int] = Field(default_factory=dict)
    excluded_categories: list[str] = Field(default_factory=list)
    effective_from: date | None = None


@event("warranty.checked", topic=WARRANTY, subject="request_id")
class WarrantyChecked(EventData):
    """Coverage of a received request's unit, judged on its received date, with the reason."""

    request_id: str
    serial: str
    covered: bool
    expires_on: date | None = None
    reason: str
    basis: CoverageBasis | None = Field(None, description="Registered sale, the request's purchase date, or none")
    judged_on: date | None = Field(None, description="The request's received date (UTC)")


@event("part.swapped", topic=WARRANTY, subject="serial")
class PartSwapped(EventData):
    """A part of a unit was replaced in a job: covered or billable, decided on the swap date and category."""

    swap_id: str
    job_id: str
    request_id: str
    serial: str
    part_number: str
    part_category: str
    quantity: int
    old_part_serial: str | None = None
    new_part_serial: str | None = None
    covered: bool
    covered_until: date | None = Field(None, description="Last day the part category is covered")
    reason: str
    unit_cost: Decimal
    currency: str
    dealer_id: str | None = Field(None, description="The job's dealer")
    recorded_by: str
    issued_from: str | None = Field(
        None, description="The stock location (the technician's van) the new part was issued from, if stocked"
    )


@event("part.registered", topic=WARRANTY, subject="part_number")
class PartRegistered(EventData):
    """A spare part entered (or was re-priced in) the catalogue. The last registration of a part number holds;
    intake keeps a copy to price quotes from."""

    part_number: str
    name: str
    category: str = Field(description="The part category warranty's coverage and return rules are keyed by")
    unit_price: Decimal = Field(description="Price of one unit, a decimal string in `currency`")
    currency: str
    registered_by: str


@event("unit.repair_recorded", topic=WARRANTY, subject="serial")
class UnitRepairRecorded(EventData):
    """Warranty's repair record of a unit: a job for it was completed fixed (caused by `job.completed`)."""

    serial: str
    job_id: str
    request_id: str
    technician_id: str | None = None
    dealer_id: str | None = None


@event("unit.exchange_entitled", topic=WARRANTY, subject="serial")
class UnitExchangeEntitled(EventData):
    """Repaired twice in warranty for one fault (part category) that came back: exchange or return it."""

    serial: str
    fault_category: str
    repair_job_ids: list[str]
    failure_job_id: str
    reason: str


@event("unit.returned", topic=WARRANTY, subject="serial")
class UnitReturned(EventData):
    """The unit was taken back and the customer refunded."""

    return_id: str
    serial: str
    reason: str
    basis: str = Field(description="within_return_days | two_repair_rule")
    days_since_sale: int
    requested_by: str


@event("unit.exchanged", topic=WARRANTY, subject="serial")
class UnitExchanged(EventData):
    """The unit was replaced by a new one."""

    return_id: str
    serial: str
    reason: str
    basis: str = Field(description="within_exchange_days | two_repair_rule")
    days_since_sale: int
    requested_by: str


@event("return.rejected", topic=WARRANTY, subject="serial")
class ReturnRejected(EventData):
    """A return or exchange was refused, with the reasons and the remedy left (exchange or repair)."""

    return_id: str
    serial: str
    kind: ReturnKind
    reason: str
    reasons: list[str]
    remedy: str
    days_since_sale: int
    requested_by: str


@event("claim.submitted", topic=WARRANTY, subject="claim_id")
class ClaimSubmitted(EventData):
    """A dealer claimed a job's labour and covered parts; the amounts are what the rules would pay."""

    claim_id: str
    job_id: str
    request_id: str
    serial: str | None = None
    dealer_id: str
    labour_minutes: int
    swap_ids: list[str]
    labour_amount: Decimal
    parts_amount: Decimal
    total_amount: Decimal
    currency: str
    submitted_by: str


@event("claim.approved", topic=WARRANTY, subject="claim_id")
class ClaimApproved(EventData):
    """The claim will be paid: every rule held, or a warranty officer overrode it (who and why)."""

    claim_id: str
    job_id: str
    dealer_id: str
    reasons: list[ClaimReason]
    decided_by: str = Field(description="`rules` for the automatic adjudication, else the officer's id")
    override: bool = False
    note: str | None = None
    total_amount: Decimal


@event("claim.rejected", topic=WARRANTY, subject="claim_id")
class ClaimRejected(EventData):
    """The claim will not be paid: the failed rules are in `reasons`, or a warranty officer overrode it."""

    claim_id: str
    job_id: str
    dealer_id: str
    reasons: list[ClaimReason]
    decided_by: str = Field(description="`rules` for the automatic adjudication, else the officer's id")
    override: bool = False
    note: str | None = None
    total_amount: Decimal


# --- the parts ledger: stock locations, movements, part requests and returns ---------------------------------
#
# A location's events (`stock_location.registered`, `stock.*`) are keyed by `location_id`: one location's
# movements stay in order, and its stock is their fold. A part request's events are keyed by `part_request_id`.


class LocationKind(StrEnum):
    """Where parts are kept: a warehouse, a service center's store, or a technician's van."""

    warehouse = "warehouse"
    center_store = "center"  # (not `center`: a str enum member may not shadow str.center)
    van = "van"


class PartCondition(StrEnum):
    """The state of a part that came back from the field."""

    defective = "defective"
    damaged = "damaged"
    no_fault_found = "no_fault_found"


@event("stock_location.registered", topic=WARRANTY, subject="location_id")
class StockLocationRegistered(EventData):
    """A place that holds parts: a warehouse, a service center's store (`center_id`) or a technician's van
    (`technician_id`, one van per technician)."""

    location_id: str
    kind: LocationKind
    center_id: str | None = None
    technician_id: str | None = None
    registered_by: str


@event("stock.received", topic=WARRANTY, subject="location_id")
class StockReceived(EventData):
    """Parts arrived at a location from outside the ledger (a supplier's delivery): on hand grows."""

    receipt_id: str
    location_id: str
    part_number: str
    quantity: int
    reference: str | None = Field(None, description="The caller's reference, e.g. a delivery note")
    received_by: str


@event("stock.transferred_out", topic=WARRANTY, subject="location_id")
class StockTransferredOut(EventData):
    """Parts left a location for another one (`stock.transferred_in` at the other end, same `transfer_id`)."""

    transfer_id: str
    location_id: str
    to_location_id: str
    part_number: str
    quantity: int
    transferred_by: str


@event("stock.transferred_in", topic=WARRANTY, subject="location_id")
class StockTransferredIn(EventData):
    """Parts came in from another location (`stock.transferred_out` there, same `transfer_id`)."""

    transfer_id: str
    location_id: str
    from_location_id: str
    part_number: str
    quantity: int
    transferred_by: str


@event("stock.reserved", topic=WARRANTY, subject="location_id")
class StockReserved(EventData):
    """Parts on hand set aside for a part request (a job): reserved grows, available shrinks."""

    location_id: str
    part_number: str
    quantity: int
    part_request_id: str
    job_id: str


@event("stock.shipped", topic=WARRANTY, subject="location_id")
class StockShipped(EventData):
    """A part request's reserved parts left the location for the technician's van: on hand and reserved
    shrink by `quantity`."""

    location_id: str
    part_number: str
    quantity: int
    part_request_id: str
    job_id: str
    to_location_id: str


@event("stock.delivered", topic=WARRANTY, subject="location_id")
class StockDelivered(EventData):
    """A shipped part request reached the technician's van: on hand grows, reserved for the request's job."""

    location_id: str
    part_number: str
    quantity: int
    part_request_id: str
    job_id: str
    from_location_id: str


@event("stock.issued", topic=WARRANTY, subject="location_id")
class StockIssued(EventData):
    """Parts left the technician's van into a unit (a swap): on hand shrinks; what was reserved for the
    swap's job is used first (`from_reservations`: part request id → quantity)."""

    location_id: str
    part_number: str
    quantity: int
    swap_id: str
    job_id: str
    serial: str
    from_reservations: dict[str, int] = Field(default_factory=dict)


@event("stock.released", topic=WARRANTY, subject="location_id")
class StockReleased(EventData):
    """What a part request still held at the location was set free: its job was completed fixed without using
    it. Reserved shrinks, available grows; on hand is unchanged."""

    location_id: str
    part_number: str
    quantity: int
    part_request_id: str
    job_id: str


@event("part_request.reserved", topic=WARRANTY, subject="part_request_id")
class PartRequestReserved(EventData):
    """A job's part request is covered: `quantity` is reserved at `location_id` (the technician's van, else
    his center, else a warehouse); at once when asked, or when stock arrived for a backordered request."""

    part_request_id: str
    job_id: str
    request_id: str
    serial: str | None = None
    part_number: str
    quantity: int
    location_id: str
    location_kind: LocationKind
    dealer_id: str | None = Field(None, description="The job's dealer")
    technician_id: str | None = None
    requested_by: str


@event("part_request.backordered", topic=WARRANTY, subject="part_request_id")
class PartRequestBackordered(EventData):
    """No location the job may draw from had the quantity available: the request waits for stock (it is
    reserved by the first receipt or transfer that makes it available)."""

    part_request_id: str
    job_id: str
    request_id: str
    serial: str | None = None
    part_number: str
    quantity: int
    dealer_id: str | None = Field(None, description="The job's dealer")
    technician_id: str | None = None
    requested_by: str
    reason: str


@event("part_request.shipped", topic=WARRANTY, subject="part_request_id")
class PartRequestShipped(EventData):
    """The reserved parts left the warehouse or center for the technician's van."""

    part_request_id: str
    job_id: str
    request_id: str
    serial: str | None = None
    dealer_id: str | None = None
    part_number: str
    quantity: int
    from_location_id: str
    to_location_id: str
    shipped_by: str


@event("part_request.received", topic=WARRANTY, subject="part_request_id")
class PartRequestReceived(EventData):
    """The technician received (some of) the shipped parts into his van, reserved there for the job."""

    part_request_id: str
    job_id: str
    request_id: str
    serial: str | None = None
    dealer_id: str | None = None
    part_number: str
    quantity: int
    location_id: str
    received_by: str


@event("part_request.released", topic=WARRANTY, subject="part_request_id")
class PartRequestReleased(EventData):
    """The job was completed fixed: what the request still held (`quantity` at `location_id`) is free again, and
    a backordered request (`quantity` 0, no location) will not be filled any more."""

    part_request_id: str
    job_id: str
    request_id: str
    serial: str | None = None
    dealer_id: str | None = None
    part_number: str
    quantity: int = Field(description="How many were still reserved and are free again (0 for a backorder)")
    location_id: str | None = None
    reason: str


@event("part.returned", topic=WARRANTY, subject="serial")
class PartReturned(EventData):
    """The old part of a swap came back from the field, in the condition stated. Claims for covered swaps of
    the categories whose defective part must come back (`RETURN_REQUIRED_CATEGORIES`) need it."""

    return_id: str
    swap_id: str
    job_id: str
    request_id: str
    serial: str
    part_number: str
    part_category: str
    old_part_serial: str
    condition: PartCondition
    dealer_id: str | None = Field(None, description="The job's dealer")
    returned_by: str
