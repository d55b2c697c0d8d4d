"""warranty's answers as pydantic views: what each route declares as its `response_model` and validates its answer
against (the read model and the handlers build the same shapes as dicts; design.md is the contract)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.warranty import ClaimReason
from shared.events import UNKNOWN_ACTOR


class View(BaseModel):
    # Rows a read model stored under an older build may carry a key this one no longer shows: it is left out.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --- products, policies, coverage ----------------------------------------------------------------------------


class ProductView(View):
    serial: str
    model: str
    product_line: str
    sold_on: str
    dealer_id: str | None
    registered_at: str | None


class RowErrorView(View):
    line: int
    field: str
    reason: str
    serial: str | None


class ImportReport(View):
    imported: int
    rows: int
    rejected: int
    error_count: int
    errors: list[RowErrorView] = Field(description="The first errors, each with its line number")


class PolicyVersionView(View):
    effective_from: str | None
    months: int
    part_months: dict[str, int]
    excluded_categories: list[str]


class PolicyView(View):
    product_line: str
    versions: list[PolicyVersionView]
    version: int


class CoveragePolicyView(View):
    months: int
    part_months: dict[str, int]
    effective_from: str | None
    default: bool


class PartCoverageView(View):
    category: str
    covered: bool
    until: str | None
    reason: str


class CoverageView(View):
    serial: str
    on: str
    covered: bool
    expires_on: str | None
    parts: dict[str, str | None]
    excluded_categories: list[str]
    reason: str
    basis: str
    sold_on: str
    product_line: str
    policy: CoveragePolicyView
    part: PartCoverageView | None = Field(None, description="Only when a `category` was asked about")


# --- swaps, claims, returns, history -------------------------------------------------------------------------


class SwapView(View):
    id: str
    job_id: str
    request_id: str
    serial: str
    part_number: str
    part_category: str
    quantity: int
    old_part_serial: str | None
    new_part_serial: str | None
    covered: bool
    covered_until: str | None
    reason: str
    unit_cost: str
    amount: str
    currency: str
    dealer_id: str | None
    recorded_by: str
    issued_from: str | None
    swapped_at: str | None


class ClaimAmounts(View):
    labour: str
    parts: str
    total: str
    currency: str


class ClaimDecisionView(View):
    status: str
    decided_by: str
    override: bool
    note: str | None
    reasons: list[ClaimReason]
    at: str | None


class ClaimView(View):
    id: str
    job_id: str
    request_id: str
    serial: str | None
    dealer_id: str
    status: str | None
    labour_minutes: int
    swap_ids: list[str]
    amounts: ClaimAmounts
    submitted_by: str
    submitted_at: str | None
    reasons: list[ClaimReason]
    decisions: list[ClaimDecisionView]
    version: int


class ReturnDecisionView(View):
    id: str
    serial: str
    kind: str
    status: str
    basis: str | None
    reasons: list[str]
    remedy: str | None
    days_since_sale: int | None
    sold_on: str | None
    requested_at: str
    reason: str | None


class HistoryEntryView(View):
    time: str
    type: str
    source: str
    request_id: str | None
    job_id: str | None
    dealer_id: str | None
    detail: dict[str, Any]
    actor: str = UNKNOWN_ACTOR


class UnitHistory(View):
    serial: str
    items: list[HistoryEntryView]
    next_cursor: str | None


# --- parts, stock, part requests, part returns ---------------------------------------------------------------


class PartView(View):
    part_number: str
    name: str | None
    category: str | None
    unit_price: str
    currency: str | None
    registered_at: str | None
    version: int


class LocationView(View):
    id: str
    kind: str | None
    center_id: str | None
    technician_id: str | None


class StockLevelView(View):
    location_id: str
    part_number: str
    on_hand: int
    reserved: int
    available: int


class ReceiptView(StockLevelView):
    id: str
    reserved_for: list[str] = Field(description="Backordered part requests the receipt reserved, oldest first")


class TransferView(View):
    id: str
    part_number: str
    quantity: int
    from_: StockLevelView = Field(alias="from")
    to: StockLevelView
    reserved_for: list[str] = Field(description="Backordered part requests the transfer reserved, oldest first")


class PartRequestView(View):
    id: str
    job_id: str | None
    request_id: str | None
    serial: str | None
    dealer_id: str | None
    technician_id: str | None
    part_number: str | None
    quantity: int
    status: str | None
    location_id: str | None
    location_kind: str | None
    to_location_id: str | None
    shipped: int
    received: int
    requested_by: str | None
    requested_at: str | None
    version: int


class PartReturnView(View):
    id: str
    swap_id: str
    job_id: str
    request_id: str
    serial: str
    part_number: str
    part_category: str
    old_part_serial: str
    condition: str
    dealer_id: str | None
    returned_by: str
    returned_at: str | None
