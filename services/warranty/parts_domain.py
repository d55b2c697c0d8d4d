"""The parts catalogue and a job's part requests, pure. Stock and where a request is reserved are in
`stock.py`. No web, database or Kafka."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.warranty.stock import Candidate, positive
from shared.contracts.base import EventData
from shared.contracts.warranty import (
    LocationKind,
    PartRegistered,
    PartRequestBackordered,
    PartRequestReceived,
    PartRequestReleased,
    PartRequestReserved,
    PartRequestShipped,
)
from shared.domain import Aggregate, InvalidTransition, Namespaced, RuleViolation


@dataclass
class Part(Namespaced, Aggregate):
    """A catalogued spare part (stream `part:<part number>`); the last registration holds."""

    stream_type = "part"
    namespace = "part"

    name: str | None = None
    category: str | None = None
    unit_price: Decimal | None = None
    currency: str | None = None

    @property
    def part_number(self) -> str:
        return self.business_id

    def register(self, name: str, category: str, unit_price: Decimal, currency: str, by: str, at: datetime) -> bool:
        """Enter or re-price the part; False (nothing recorded) when the registration is what holds already."""
        if (self.name, self.category, self.unit_price, self.currency) == (name, category, unit_price, currency):
            return False
        self.record(
            PartRegistered(
                part_number=self.part_number,
                name=name,
                category=category,
                unit_price=unit_price,
                currency=currency,
                registered_by=by,
            ),
            at,
        )
        return True

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        if isinstance(data, PartRegistered):
            self.name, self.category = data.name, data.category
            self.unit_price, self.currency = data.unit_price, data.currency


# --- part requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobContext:
    """What warranty knows of the job a part request is for (from dispatch's events)."""

    job_id: str
    request_id: str
    serial: str | None
    dealer_id: str | None
    technician_id: str | None
    center_id: str | None


@dataclass
class PartRequest(Namespaced, Aggregate):
    """A job's request for parts (stream `part_request:<id>`): backordered → reserved at a location →
    (from a warehouse or center) shipped → received into the technician's van; released when the job is
    completed fixed while it still waits or holds parts the swaps did not use."""

    stream_type = "part_request"
    namespace = "part_request"

    job_id: str | None = None
    request_id: str | None = None
    serial: str | None = None
    dealer_id: str | None = None
    technician_id: str | None = None
    part_number: str | None = None
    quantity: int = 0
    requested_by: str | None = None
    status: str | None = None  # backordered | reserved | shipped | received | released
    location_id: str | None = None
    location_kind: LocationKind | None = None
    to_location_id: str | None = None
    shipped: int = 0
    received: int = 0
    requested_at: datetime | None = None

    @property
    def part_request_id(self) -> str:
        return self.business_id

    @property
    def in_transit(self) -> int:
        return self.shipped - self.received

    def open(
        self,
        job: JobContext,
        part_number: str,
        quantity: int,
        by: str,
        at: datetime,
        reserved_at: Candidate | None,
        backorder_reason: str = "",
    ) -> None:
        """The first step: reserved at the chosen location, or backordered."""
        positive(quantity)
        common = dict(
            part_request_id=self.part_request_id,
            job_id=job.job_id,
            request_id=job.request_id,
            serial=job.serial,
            part_number=part_number,
            quantity=quantity,
            dealer_id=job.dealer_id,
            technician_id=job.technician_id,
            requested_by=by,
        )
        if reserved_at is None:
            self.record(PartRequestBackordered(**common, reason=backorder_reason), at)
        else:
            self.record(
                PartRequestReserved(**common, location_id=reserved_at.location_id, location_kind=reserved_at.kind), at
            )

    def _identity(self) -> dict[str, Any]:
        """What every event after the first repeats of the request: whose, for which job, unit and part."""
        return {
            "part_request_id": self.part_request_id,
            "job_id": self.job_id,
            "request_id": self.request_id,
            "serial": self.serial,
            "dealer_id": self.dealer_id,
            "part_number": self.part_number,
        }

    def _after_previous(self, at: datetime) -> datetime:
        """A step is never stamped before the request's previous one (clocks of the caller and of dispatch's
        job may disagree by a little)."""
        return max(at, self.last_occurred_at) if self.last_occurred_at else at

    def fill(self, location_id: str, kind: LocationKind, technician_id: str | None, at: datetime) -> None:
        """A backordered request reserved at last (stock arrived)."""
        at = self._after_previous(at)
        if self.status != "backordered":
            raise InvalidTransition(f"part request {self.part_request_id} is {self.status}, not backordered")
        self.record(
            PartRequestReserved(
                **self._identity(),
                quantity=self.quantity,
                location_id=location_id,
                location_kind=kind,
                technician_id=technician_id,
                requested_by=self.requested_by,
            ),
            at,
        )

    def ship(self, to_location_id: str, quantity: int, by: str, at: datetime) -> None:
        at = self._after_previous(at)
        if self.status != "reserved":
            raise InvalidTransition(
                f"part request {self.part_request_id} is {self.status}; only a reserved one can be shipped",
                current_status=self.status,
            )
        if self.location_kind == LocationKind.van:
            raise InvalidTransition(
                f"part request {self.part_request_id} is reserved in van {self.location_id} already; nothing to ship",
                current_status=self.status,
            )
        self.record(
            PartRequestShipped(
                **self._identity(),
                quantity=quantity,
                from_location_id=self.location_id,
                to_location_id=to_location_id,
                shipped_by=by,
            ),
            at,
        )

    def receive(self, quantity: int | None, by: str, at: datetime) -> int:
        """Take (some of) the shipped parts into the van; the quantity received."""
        at = self._after_previous(at)
        if self.status != "shipped":
            raise InvalidTransition(
                f"part request {self.part_request_id} is {self.status}; only a shipped one can be received",
                current_status=self.status,
            )
        quantity = self.in_transit if quantity is None else quantity
        positive(quantity)
        if quantity > self.in_transit:
            raise RuleViolation(
                f"{quantity} cannot be received: {self.shipped} were shipped and {self.received} received already",
                field="quantity",
                shipped=self.shipped,
                received=self.received,
            )
        self.record(
            PartRequestReceived(
                **self._identity(),
                quantity=quantity,
                location_id=self.to_location_id,
                received_by=by,
            ),
            at,
        )
        return quantity

    @property
    def holding_location(self) -> str | None:
        """Where the request's reservation is now: where it was reserved, or the van once received."""
        if self.status == "reserved":
            return self.location_id
        if self.status == "received":
            return self.to_location_id
        return None

    def release(self, quantity: int, location_id: str | None, reason: str, at: datetime) -> None:
        """The job no longer needs the parts: a backorder is not filled any more; `quantity` still held at
        `location_id` is free again. A request in transit is left alone (its parts are on their way)."""
        if self.status not in ("backordered", "reserved", "received"):
            raise InvalidTransition(f"part request {self.part_request_id} is {self.status}; nothing to release")
        self.record(
            PartRequestReleased(
                **self._identity(),
                quantity=quantity,
                location_id=location_id,
                reason=reason,
            ),
            self._after_previous(at),
        )

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        match data:
            case PartRequestBackordered() | PartRequestReserved():
                if self.requested_at is None:
                    self.requested_at = occurred_at
                self.job_id, self.request_id, self.serial = data.job_id, data.request_id, data.serial
                self.dealer_id, self.technician_id = data.dealer_id, data.technician_id
                self.part_number, self.quantity, self.requested_by = data.part_number, data.quantity, data.requested_by
                if isinstance(data, PartRequestReserved):
                    self.status, self.location_id, self.location_kind = "reserved", data.location_id, data.location_kind
                else:
                    self.status = "backordered"
            case PartRequestShipped():
                self.status, self.to_location_id, self.shipped = "shipped", data.to_location_id, data.quantity
            case PartRequestReceived():
                self.received += data.quantity
                if self.received >= self.shipped:
                    self.status = "received"
            case PartRequestReleased():
                self.status = "released"
