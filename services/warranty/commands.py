"""What callers ask warranty to do (imperative names). Routes build these; the application handles them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from shared.contracts.warranty import LocationKind, PartCondition, ReturnKind


@dataclass(frozen=True)
class RegisterProduct:
    serial: str
    model: str
    product_line: str
    sold_on: date
    dealer_id: str | None


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str
    serial: str | None = None

    def as_dict(self) -> dict:
        return {"line": self.line, "field": self.field, "reason": self.reason, "serial": self.serial}


@dataclass(frozen=True)
class ImportProducts:
    """Rows that passed their own validation (with their line numbers), the errors of those that did not, and
    whether the valid rows may be imported despite the errors."""

    rows: tuple[tuple[int, RegisterProduct], ...]
    errors: tuple[RowError, ...]
    allow_partial: bool = False


@dataclass(frozen=True)
class SetWarrantyPolicy:
    product_line: str
    months: int
    part_months: dict[str, int]
    excluded_categories: list[str]
    effective_from: date | None = None


@dataclass(frozen=True)
class RecordPartSwap:
    job_id: str
    request_id: str
    serial: str
    part_number: str
    part_category: str
    quantity: int
    unit_cost: Decimal
    old_part_serial: str | None = None
    new_part_serial: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class SubmitClaim:
    job_id: str
    labour_minutes: int
    swap_ids: tuple[str, ...]


@dataclass(frozen=True)
class OverrideClaim:
    claim_id: str
    approve: bool
    note: str


@dataclass(frozen=True)
class RequestReturn:
    serial: str
    kind: ReturnKind
    reason: str
    occurred_at: datetime | None = None


# --- the parts ledger ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterPart:
    part_number: str
    name: str
    category: str
    unit_price: Decimal
    currency: str | None = None


@dataclass(frozen=True)
class RegisterStockLocation:
    location_id: str
    kind: LocationKind
    center_id: str | None = None
    technician_id: str | None = None


@dataclass(frozen=True)
class ReceiveStock:
    location_id: str
    part_number: str
    quantity: int
    reference: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class TransferStock:
    from_location_id: str
    to_location_id: str
    part_number: str
    quantity: int
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RequestPart:
    job_id: str
    part_number: str
    quantity: int
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ShipPartRequest:
    part_request_id: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ReceivePartRequest:
    part_request_id: str
    quantity: int | None = None  # None: everything in transit
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ReturnPart:
    swap_id: str
    old_part_serial: str
    condition: PartCondition
    occurred_at: datetime | None = None
