"""The parts side of `make demo` (design.md, warranty, "Parts"): a catalogue with prices, a warehouse, each
service center's store and every technician's van, their opening stock, and for a job whose unit needs a part
its way there — from the van at once, or (the van lacking it) reserved at the center or the warehouse, or
backordered until a supplier's delivery, then shipped, taken into the van, fitted at a second visit (the
first one failed with `parts_unavailable`) — and the defective part's return. Every step carries its
business time (`occurred_at`), so the process view shows how long jobs waited for parts, and on whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from shared.clock import rfc3339 as at

if TYPE_CHECKING:
    from deploy.demo import Demo

WAREHOUSE = "WH-CENTRAL"
# (part number, name, category, unit price, opening stock at the warehouse, in each center store, in each van).
# The control board is rare: the warehouse has none until a supplier delivers, so its requests are backordered.
CATALOGUE = (
    ("MTR-200", "Drive motor", "motor", "289.00", 12, 1, 0),
    ("PMP-110", "Drain pump", "pump", "64.50", 30, 3, 1),
    ("BLT-30", "Drive belt", "belt", "18.90", 40, 4, 2),
    ("SEAL-12", "Gearbox seal kit", "seal", "12.35", 40, 4, 2),
    ("VLV-7", "Inlet valve", "valve", "23.40", 25, 2, 1),
    ("CTRL-5", "Control board", "electronics", "145.00", 0, 0, 0),
)
WEIGHTS = (10, 25, 20, 20, 15, 10)  # how often each part is the one a unit needs
CATEGORY = {number: category for number, _, category, *_ in CATALOGUE}
PART_NUMBERS = tuple(number for number, *_ in CATALOGUE)


def van_of(technician: str) -> str:
    return f"VAN-{technician}"


def store_of(center_id: str) -> str:
    return f"STORE-{center_id}"


async def set_up(demo: Demo, client: httpx.AsyncClient, centers: dict[str, list[str]], opened: datetime) -> None:
    """The catalogue, the locations (`centers`: center id → its technicians) and their opening stock, received
    the day before the demo's month starts. Everything registered already (a second run) is a 409 and kept."""
    officer = demo.token("warranty_officer")
    for number, name, category, price, *_ in CATALOGUE:
        body = {"part_number": number, "name": name, "category": category, "unit_price": price}
        # 200: registered by an earlier run (the same price again changes nothing that matters)
        await demo.call(client, "warranty", "POST", "/v1/parts", headers=officer, ok=(200, 201), json=body)
    locations = [(WAREHOUSE, {"kind": "warehouse"})]
    for center_id, technicians in centers.items():
        locations.append((store_of(center_id), {"kind": "center", "center_id": center_id}))
        locations += [(van_of(t), {"kind": "van", "technician_id": t}) for t in technicians]
    for location_id, body in locations:
        created = await demo.call(
            client,
            "warranty",
            "POST",
            "/v1/stock-locations",
            headers=officer,
            ok=(201, 409),
            json={"id": location_id, **body},
        )
        if created is None or created.get("status") == 409:
            continue  # registered by an earlier run, with its stock
        column = {"warehouse": 4, "center": 5, "van": 6}[body["kind"]]
        for row in CATALOGUE:
            quantity = int(row[column])
            if quantity:
                await receive(demo, client, location_id, str(row[0]), quantity, opened, reference="opening stock")


async def receive(
    demo: Demo, client: httpx.AsyncClient, location_id: str, part: str, quantity: int, when: datetime, reference: str
) -> list[str]:
    """A supplier's delivery; the part requests it filled at once."""
    receipt = await demo.call(
        client,
        "warranty",
        "POST",
        "/v1/stock/receipts",
        headers=demo.token("warranty_officer"),
        json={
            "location_id": location_id,
            "part_number": part,
            "quantity": quantity,
            "reference": reference,
            "occurred_at": at(when),
        },
    )
    return receipt["reserved_for"] if receipt else []


@dataclass
class PartNeeded:
    """What the first visit found: the part request, and whether the van had the part (fitted at once)."""

    part_request_id: str
    part_number: str
    in_van: bool
    status: str


async def ask(demo: Demo, client: httpx.AsyncClient, job_id: str, technician: str, when: datetime) -> PartNeeded | None:
    """The technician on site finds the part the unit needs and asks for it: his van, else his center, else the
    warehouse reserves it, or it is backordered."""
    part = demo.rng.choices(PART_NUMBERS, WEIGHTS)[0]
    asked = await demo.call(
        client,
        "warranty",
        "POST",
        "/v1/part-requests",
        eventually=True,  # warranty learns of the job from dispatch's events
        headers=demo.token("technician", sub=technician),
        json={"job_id": job_id, "part_number": part, "quantity": 1, "occurred_at": at(when)},
    )
    if asked is None:
        return None
    return PartNeeded(asked["id"], part, asked.get("location_kind") == "van", asked["status"])


async def bring_to_van(
    demo: Demo, client: httpx.AsyncClient, need: PartNeeded, technician: str, asked: datetime, now: datetime
) -> datetime | None:
    """The part's way to the van: a backorder waits for the supplier's delivery at the warehouse (1-4 days;
    the oldest backorders are served first, so another delivery may be needed), then the store ships it and the
    technician takes it in. When it is in the van; None while it is still on its way at `now`."""
    rng, t, url = demo.rng, asked, f"/v1/part-requests/{need.part_request_id}"
    if need.status == "backordered":
        for _ in range(6):
            t += timedelta(hours=rng.uniform(24, 96))
            if t > now:
                return None
            if need.part_request_id in await receive(
                demo, client, WAREHOUSE, need.part_number, rng.randint(1, 3), t, "supplier delivery"
            ):
                break
        else:
            return None
    t += timedelta(hours=rng.uniform(2, 20))
    if t > now:
        return None
    shipped = await demo.call(
        client,
        "warranty",
        "POST",
        f"{url}/ship",
        headers=demo.token("dispatcher"),
        retry=(409,),
        json={"occurred_at": at(t)},
    )
    if shipped is None:
        return None
    t += timedelta(hours=rng.uniform(4, 30))
    if t > now:
        return None
    taken = await demo.call(
        client,
        "warranty",
        "POST",
        f"{url}/receive",
        headers=demo.token("technician", sub=technician),
        json={"occurred_at": at(t)},
    )
    return t if taken else None


async def fit(
    demo: Demo, client: httpx.AsyncClient, job: dict, request: dict, need: PartNeeded, when: datetime, now: datetime
) -> str | None:
    """The swap issues the part from the van (where it is reserved for the job); the defective old part goes
    back to the warehouse a few days later, most of the time. The swap's id."""
    rng = demo.rng
    if when > now:
        return None  # the visit is still going on
    old_serial = f"OLD-{need.part_number}-{rng.randrange(10**6):06d}"
    swap = await demo.call(
        client,
        "warranty",
        "POST",
        "/v1/part-swaps",
        eventually=True,
        headers=demo.token("warranty_officer"),
        json={
            "job_id": job["id"],
            "request_id": request["id"],
            "serial": request["product"]["serial"],
            "part_number": need.part_number,
            "part_category": CATEGORY[need.part_number],
            "quantity": 1,
            "old_part_serial": old_serial,
            "unit_cost": next(price for number, _, _, price, *_ in CATALOGUE if number == need.part_number),
            "occurred_at": at(when),
        },
    )
    if swap is None:
        return None
    returned_at = when + timedelta(days=rng.uniform(1, 6))
    if returned_at <= now and rng.random() < 0.75:
        await demo.call(
            client,
            "warranty",
            "POST",
            "/v1/part-returns",
            headers=demo.token("warranty_officer"),
            json={
                "swap_id": swap["id"],
                "old_part_serial": old_serial,
                "condition": rng.choices(["defective", "no_fault_found", "damaged"], [80, 15, 5])[0],
                "occurred_at": at(returned_at),
            },
        )
    return str(swap["id"])


def quote_parts(demo: Demo) -> list[dict]:
    """The parts a paid repair's quote lists (priced by intake from the catalogue): often one, sometimes none."""
    if demo.rng.random() < 0.35:
        return []
    return [{"part_number": demo.rng.choices(PART_NUMBERS, WEIGHTS)[0], "quantity": 1}]
