"""Stock, pure: a location (warehouse, center store, technician's van) and its stock as the fold of movement
events, and the choice of where a job's part request is reserved. No web, database or Kafka.

**Stock.** A location's stock of a part is the fold of its movements: receipts, transfers in and out,
deliveries of shipped requests add to `on_hand`; transfers out, shipments and issues (swaps) take from it.
`reserved` is what part requests hold at the location (per request, so that a swap uses its own job's parts
first); `available = on_hand - reserved`. Every command that takes stock checks `available` (or the request's
own reservation) against the folded state and refuses (409 naming what is there) rather than go below zero;
two commands racing for the last unit meet at the location's stream version, and the loser appends nothing.

**Where a part request is reserved.** The assigned technician's van, else his center's store, else a
warehouse; among several locations of a kind, the first by id that has the whole quantity available (a
request is reserved at one location, never split). None has it: the request is backordered, and the first
receipt or transfer that makes the quantity available at a location the job may draw from reserves it
(oldest backorder first; one that does not fit is skipped, not blocking the ones behind it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contracts.base import EventData
from shared.contracts.warranty import (
    LocationKind,
    StockDelivered,
    StockIssued,
    StockLocationRegistered,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
    StockTransferredIn,
    StockTransferredOut,
)
from shared.domain import Aggregate, Conflict, InvalidTransition, Namespaced, RuleViolation

# The order a part request looks for stock in.
RESERVATION_ORDER = (LocationKind.van, LocationKind.center_store, LocationKind.warehouse)


@dataclass
class Reservation:
    part_number: str
    job_id: str
    quantity: int


@dataclass(frozen=True)
class Level:
    """One part's stock at one location."""

    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def describe(self, location_id: str, part_number: str) -> str:
        return (
            f"location {location_id} has {self.on_hand} of part {part_number} on hand, {self.reserved} reserved, "
            f"{self.available} available"
        )


@dataclass
class StockLocation(Namespaced, Aggregate):
    """A warehouse, a center's store or a technician's van (stream `location:<id>`), with its stock."""

    stream_type = "stock_location"
    namespace = "location"

    kind: LocationKind | None = None
    center_id: str | None = None
    technician_id: str | None = None
    on_hand: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)  # part request id → what it holds

    @property
    def location_id(self) -> str:
        return self.business_id

    # --- state ----------------------------------------------------------------------------------------

    def level(self, part_number: str) -> Level:
        reserved = sum(r.quantity for r in self.reservations.values() if r.part_number == part_number)
        return Level(self.on_hand.get(part_number, 0), reserved)

    def reserved_for_job(self, part_number: str, job_id: str) -> list[tuple[str, int]]:
        """(part request id, quantity) of what this location holds for the job, oldest reservation first."""
        return [
            (request_id, r.quantity)
            for request_id, r in self.reservations.items()
            if r.part_number == part_number and r.job_id == job_id and r.quantity > 0
        ]

    def _shortage(self, part_number: str, refused: str, **extra: Any) -> Conflict:
        """The 409 for more parts than are available here: `refused` (what was asked, up to its separator),
        then the part's level at this location, with the level's numbers for the caller."""
        level = self.level(part_number)
        return Conflict(
            refused + level.describe(self.location_id, part_number),
            field="quantity",
            location_id=self.location_id,
            part_number=part_number,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            **extra,
        )

    # --- commands -------------------------------------------------------------------------------------

    def register(
        self, kind: LocationKind, center_id: str | None, technician_id: str | None, by: str, at: datetime
    ) -> None:
        if self.kind is not None:
            raise Conflict(f"stock location {self.location_id} already exists", field="id")
        if kind == LocationKind.van and not technician_id:
            raise RuleViolation("a van names the technician who drives it", field="technician_id")
        if kind == LocationKind.center_store and not center_id:
            raise RuleViolation("a center's store names its center", field="center_id")
        if kind != LocationKind.van and technician_id:
            raise RuleViolation(f"only a van belongs to a technician, not a {kind.value}", field="technician_id")
        self.record(
            StockLocationRegistered(
                location_id=self.location_id,
                kind=kind,
                center_id=center_id,
                technician_id=technician_id,
                registered_by=by,
            ),
            at,
        )

    def receive(self, receipt_id: str, part_number: str, quantity: int, reference: str | None, by: str, at) -> None:
        positive(quantity)
        self.record(
            StockReceived(
                receipt_id=receipt_id,
                location_id=self.location_id,
                part_number=part_number,
                quantity=quantity,
                reference=reference,
                received_by=by,
            ),
            at,
        )

    def transfer_out(self, transfer_id: str, to: str, part_number: str, quantity: int, by: str, at) -> None:
        positive(quantity)
        if quantity > self.level(part_number).available:
            raise self._shortage(part_number, f"cannot transfer {quantity} of part {part_number}: ")
        self.record(
            StockTransferredOut(
                transfer_id=transfer_id,
                location_id=self.location_id,
                to_location_id=to,
                part_number=part_number,
                quantity=quantity,
                transferred_by=by,
            ),
            at,
        )

    def transfer_in(self, transfer_id: str, source: str, part_number: str, quantity: int, by: str, at) -> None:
        positive(quantity)
        self.record(
            StockTransferredIn(
                transfer_id=transfer_id,
                location_id=self.location_id,
                from_location_id=source,
                part_number=part_number,
                quantity=quantity,
                transferred_by=by,
            ),
            at,
        )

    def reserve(self, part_request_id: str, job_id: str, part_number: str, quantity: int, at: datetime) -> None:
        positive(quantity)
        if quantity > self.level(part_number).available:
            raise self._shortage(part_number, f"cannot reserve {quantity} of part {part_number}: ")
        self.record(
            StockReserved(
                location_id=self.location_id,
                part_number=part_number,
                quantity=quantity,
                part_request_id=part_request_id,
                job_id=job_id,
            ),
            at,
        )

    def ship(self, part_request_id: str, to: str, at: datetime) -> int:
        """Send a request's whole reservation to `to`; the quantity shipped."""
        held = self.reservations.get(part_request_id)
        if held is None or held.quantity == 0:
            raise InvalidTransition(f"location {self.location_id} holds nothing for part request {part_request_id}")
        quantity = held.quantity  # the fold empties the reservation below
        self.record(
            StockShipped(
                location_id=self.location_id,
                part_number=held.part_number,
                quantity=quantity,
                part_request_id=part_request_id,
                job_id=held.job_id,
                to_location_id=to,
            ),
            at,
        )
        return quantity

    def release(self, part_request_id: str, at: datetime) -> int:
        """Free what a request still holds here; the quantity freed (0: it holds nothing, nothing recorded)."""
        held = self.reservations.get(part_request_id)
        if held is None or held.quantity <= 0:
            return 0
        quantity = held.quantity  # the fold empties the reservation below
        self.record(
            StockReleased(
                location_id=self.location_id,
                part_number=held.part_number,
                quantity=quantity,
                part_request_id=part_request_id,
                job_id=held.job_id,
            ),
            at,
        )
        return quantity

    def deliver(self, part_request_id: str, job_id: str, part_number: str, quantity: int, source: str, at) -> None:
        positive(quantity)
        self.record(
            StockDelivered(
                location_id=self.location_id,
                part_number=part_number,
                quantity=quantity,
                part_request_id=part_request_id,
                job_id=job_id,
                from_location_id=source,
            ),
            at,
        )

    def issue(self, swap_id: str, job_id: str, serial: str, part_number: str, quantity: int, at: datetime) -> None:
        """Parts into a unit: the job's own reservations here first, then what is available; never below zero."""
        positive(quantity)
        taken: dict[str, int] = {}
        left = quantity
        for request_id, held in self.reserved_for_job(part_number, job_id):
            use = min(held, left)
            if use:
                taken[request_id] = use
                left -= use
        if left > self.level(part_number).available:
            raise self._shortage(
                part_number,
                f"no stock in the van for this swap: {quantity} of part {part_number} needed, "
                f"{sum(taken.values())} reserved for job {job_id}; ",
                reserved_for_job=sum(taken.values()),
            )
        self.record(
            StockIssued(
                location_id=self.location_id,
                part_number=part_number,
                quantity=quantity,
                swap_id=swap_id,
                job_id=job_id,
                serial=serial,
                from_reservations=taken,
            ),
            at,
        )

    # --- the fold -------------------------------------------------------------------------------------

    def _add(self, part_number: str, delta: int) -> None:
        self.on_hand[part_number] = self.on_hand.get(part_number, 0) + delta

    def _hold(self, request_id: str, part_number: str, job_id: str, delta: int) -> None:
        held = self.reservations.setdefault(request_id, Reservation(part_number, job_id, 0))
        held.quantity += delta
        if held.quantity <= 0:
            del self.reservations[request_id]

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        match data:
            case StockLocationRegistered():
                self.kind, self.center_id, self.technician_id = data.kind, data.center_id, data.technician_id
            case StockReceived() | StockTransferredIn():
                self._add(data.part_number, data.quantity)
            case StockTransferredOut():
                self._add(data.part_number, -data.quantity)
            case StockReserved():
                self._hold(data.part_request_id, data.part_number, data.job_id, data.quantity)
            case StockShipped():
                self._add(data.part_number, -data.quantity)
                self._hold(data.part_request_id, data.part_number, data.job_id, -data.quantity)
            case StockDelivered():
                self._add(data.part_number, data.quantity)
                self._hold(data.part_request_id, data.part_number, data.job_id, data.quantity)
            case StockReleased():
                self._hold(data.part_request_id, data.part_number, data.job_id, -data.quantity)
            case StockIssued():
                self._add(data.part_number, -data.quantity)
                for request_id, used in data.from_reservations.items():
                    self._hold(request_id, data.part_number, data.job_id, -used)


def positive(quantity: int) -> None:
    if quantity <= 0:
        raise RuleViolation("quantity must be at least 1", field="quantity")


@dataclass(frozen=True)
class Candidate:
    """A location a job may draw from, with what it has available of the part."""

    location_id: str
    kind: LocationKind
    available: int


def choose_location(candidates: Iterable[Candidate], quantity: int) -> Candidate | None:
    """Van, then center, then warehouse; the first by id within a kind with the whole quantity available."""
    ranked = sorted(candidates, key=lambda c: (RESERVATION_ORDER.index(c.kind), c.location_id))
    return next((c for c in ranked if c.available >= quantity), None)
