"""Stock never goes below zero when two technicians race for the last unit (one wins, the other gets a 409), on
SQLite and on PostgreSQL, where the two commands really overlap and meet at the van's stream version; and the
stock read table rebuilt from the movement events equals the live one."""

import asyncio
import json

from sqlalchemy import select

from services.warranty.parts_read_model import part_requests, part_returns, parts, stock_levels, stock_locations
from services.warranty.read_model import swaps
from services.warranty.rebuild import rebuild
from services.warranty.tests.conftest import open_job, serial
from services.warranty.tests.parts_helpers import Ledger, receive, request_part, stock
from services.warranty.tests.test_parts_flow import ship, swap, take_in
from shared.eventstore.store import EventStore


async def race_for_the_last_unit(w, technician: str = "T1") -> tuple[list[int], Ledger]:
    """Two jobs of one technician (two units), one part in his van, both swaps at once."""
    ledger = await Ledger(w, technician_id=technician).set_up()
    first, second = [await open_job(w, serial(), technician_id=technician) for _ in range(2)]
    await receive(w, ledger.van, ledger.part, 1)
    answers = await asyncio.gather(
        swap(w, first, ledger.part, technician=technician), swap(w, second, ledger.part, technician=technician)
    )
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    return sorted(a.status_code for a in answers), ledger


async def test_two_swaps_racing_for_the_last_unit_in_the_van_one_wins_the_other_is_a_409(warranty):
    statuses, ledger = await race_for_the_last_unit(warranty)
    assert statuses == [201, 409]
    assert await stock(warranty, ledger.van, ledger.part) == {"on_hand": 0, "reserved": 0, "available": 0}


async def race_of_part_requests(w, technician: str = "T1") -> tuple[list[tuple], Ledger]:
    """Two jobs of one technician, one part in his van and nowhere else, both part requests at once."""
    ledger = await Ledger(w, technician_id=technician).set_up()
    first, second = [await open_job(w, serial(), technician_id=technician) for _ in range(2)]
    await receive(w, ledger.van, ledger.part, 1)
    officer = w.officer
    answers = await asyncio.gather(
        request_part(w, first, ledger.part, headers=officer), request_part(w, second, ledger.part, headers=officer)
    )
    outcomes = [
        (a.status_code, a.json()["status"], a.json()["location_id"])
        if a.status_code == 201
        else (a.status_code, None, None)
        for a in answers
    ]
    return sorted(outcomes), ledger


def reserved_once(outcomes: list[tuple], ledger: Ledger) -> bool:
    """Writers on SQLite queue, so the second sees the first's reservation and backorders; where they overlap
    (PostgreSQL) the second may meet the van's new version and be refused: either way the unit is reserved once."""
    return outcomes in (
        [(201, "backordered", None), (201, "reserved", ledger.van)],
        [(201, "reserved", ledger.van), (409, None, None)],
    )


async def test_two_part_requests_racing_for_the_last_unit_reserve_it_once(warranty):
    outcomes, ledger = await race_of_part_requests(warranty)
    assert reserved_once(outcomes, ledger), outcomes
    assert await stock(warranty, ledger.van, ledger.part) == {"on_hand": 1, "reserved": 1, "available": 0}


async def test_on_postgresql_two_swaps_racing_for_the_last_unit_one_wins_the_other_is_a_409(warranty_on_postgres):
    for technician in ("T-a", "T-b", "T-c"):  # a few rounds: the two commands overlap in different ways
        statuses, ledger = await race_for_the_last_unit(warranty_on_postgres, technician)
        assert statuses == [201, 409]
        empty = {"on_hand": 0, "reserved": 0, "available": 0}
        assert await stock(warranty_on_postgres, ledger.van, ledger.part) == empty


async def test_on_postgresql_two_part_requests_racing_for_the_last_unit_reserve_it_once(warranty_on_postgres):
    for technician in ("T-d", "T-e", "T-f"):
        outcomes, ledger = await race_of_part_requests(warranty_on_postgres, technician)
        assert reserved_once(outcomes, ledger), outcomes
        held = {"on_hand": 1, "reserved": 1, "available": 0}
        assert await stock(warranty_on_postgres, ledger.van, ledger.part) == held


TABLES = (parts, stock_locations, stock_levels, part_requests, part_returns, swaps)


async def snapshot(db) -> dict:
    async with db.read() as conn:
        return {
            table.name: [
                {k: (json.loads(v) if k == "view" else v) for k, v in row._asdict().items()}
                for row in (await conn.execute(select(table).order_by(*table.primary_key))).all()
            ]
            for table in TABLES
        }


async def test_the_stock_rebuilt_from_the_movement_events_equals_the_live_read_table(warranty):
    w = warranty
    ledger = await Ledger(w).set_up()
    job = await open_job(w, serial())
    backordered = (await request_part(w, job, ledger.part, quantity=2)).json()
    await receive(w, ledger.warehouse, ledger.part, 5)
    await w.client.post(
        "/v1/stock/transfers",
        json={
            "from_location_id": ledger.warehouse,
            "to_location_id": ledger.center,
            "part_number": ledger.part,
            "quantity": 1,
        },
        headers=w.officer,
    )
    await ship(w, backordered["id"])
    await take_in(w, backordered["id"], 1)
    await receive(w, ledger.van, ledger.part, 1)
    swapped = (await swap(w, job, ledger.part, old_part_serial="OLD-1", quantity=2)).json()
    await w.client.post(
        "/v1/part-returns",
        json={"swap_id": swapped["id"], "old_part_serial": "OLD-1", "condition": "defective"},
        headers=w.officer,
    )
    await request_part(w, job, ledger.part)  # reserved at the center
    db = w.app.state.runtime.db
    live = await snapshot(db)
    assert [(r["location_id"], r["on_hand"], r["reserved"]) for r in live["warranty_stock"]] == sorted(
        [(ledger.warehouse, 2, 0), (ledger.center, 1, 1), (ledger.van, 0, 0)]
    )
    assert await rebuild(db, EventStore(source="warranty")) > 0
    assert await snapshot(db) == live
