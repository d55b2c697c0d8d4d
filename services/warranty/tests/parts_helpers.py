"""Calls of the parts ledger's API the tests share: catalogue a part, register locations, receive stock, read a
stock row, ask for parts. Each returns the response; the tests assert on it."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select

from shared.eventstore.tables import events


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def stored_events(warranty) -> int:
    async with warranty.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(events))).scalar_one()


async def catalogue(warranty, part_number: str, *, category: str = "pump", price: str = "120.00") -> httpx.Response:
    body = {"part_number": part_number, "name": f"{category} {part_number}", "category": category, "unit_price": price}
    return await warranty.client.post("/v1/parts", json=body, headers=warranty.officer)


async def add_location(warranty, location_id: str, kind: str, **owner) -> httpx.Response:
    body = {"id": location_id, "kind": kind, **owner}
    return await warranty.client.post("/v1/stock-locations", json=body, headers=warranty.officer)


async def receive(warranty, location_id: str, part_number: str, quantity: int, **extra) -> httpx.Response:
    body = {"location_id": location_id, "part_number": part_number, "quantity": quantity, **extra}
    return await warranty.client.post("/v1/stock/receipts", json=body, headers=warranty.officer)


async def stock(warranty, location_id: str, part_number: str) -> dict:
    answer = await warranty.client.get(
        f"/v1/stock?location_id={location_id}&part_number={part_number}", headers=warranty.officer
    )
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    if not items:
        return {"on_hand": 0, "reserved": 0, "available": 0}
    return {k: items[0][k] for k in ("on_hand", "reserved", "available")}


async def swap_compressor(
    warranty, job_id: str, request_id: str, serial: str, part_number: str, headers
) -> httpx.Response:
    """The technician swaps a compressor (one, at 310.00; old part C-OLD out, new part C-NEW in) on the job."""
    body = {
        "job_id": job_id,
        "request_id": request_id,
        "serial": serial,
        "part_number": part_number,
        "part_category": "compressor",
        "quantity": 1,
        "unit_cost": "310.00",
        "old_part_serial": "C-OLD",
        "new_part_serial": "C-NEW",
    }
    return await warranty.client.post("/v1/part-swaps", json=body, headers=headers)


async def return_old_part_and_complete(
    warranty, dispatch_client, swap_id: str, job_id: str, serial: str, technician, on_site
) -> None:
    """The technician sends the swapped-out compressor (C-OLD) back as defective and completes the job as fixed;
    returns once warranty has recorded the repair on the unit (what a claim for the job needs)."""
    returned = await warranty.client.post(
        "/v1/part-returns",
        json={"swap_id": swap_id, "old_part_serial": "C-OLD", "condition": "defective"},
        headers=technician,
    )
    assert returned.status_code == 201, returned.text
    completed = await dispatch_client.post(
        f"/v1/jobs/{job_id}/complete", headers=on_site, json={"fixed": True, "resolution": "new compressor"}
    )
    assert completed.status_code == 200, completed.text
    await warranty.wait_for_history(serial, lambda items: any(i["type"] == "unit.repair_recorded" for i in items))


async def request_part(warranty, job, part_number: str, quantity: int = 1, headers=None) -> httpx.Response:
    body = {"job_id": job.job_id, "part_number": part_number, "quantity": quantity}
    return await warranty.client.post(
        "/v1/part-requests", json=body, headers=headers or warranty.auth("technician", sub="T1")
    )


class Ledger:
    """A catalogued part and the locations one job may draw from: T1's van, center C1's store, a warehouse,
    each under names of its own (tests share a broker, not a database, but ids read better unique)."""

    def __init__(self, warranty, technician_id: str = "T1", center_id: str = "C1") -> None:
        self.warranty = warranty
        self.part = unique("P")
        self.van, self.center, self.warehouse = unique("VAN"), unique("STORE"), unique("WH")
        self.technician_id, self.center_id = technician_id, center_id

    async def set_up(self, *, category: str = "pump", van: bool = True) -> Ledger:
        w = self.warranty
        assert (await catalogue(w, self.part, category=category)).status_code == 201
        if van:
            assert (await add_location(w, self.van, "van", technician_id=self.technician_id)).status_code == 201
        assert (await add_location(w, self.center, "center", center_id=self.center_id)).status_code == 201
        assert (await add_location(w, self.warehouse, "warehouse")).status_code == 201
        return self
