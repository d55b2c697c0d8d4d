"""The read model is a projection of the event store: rebuilt from the events, it equals the live one (the
technicians' open-job counts included, which also equal the open jobs counted from the jobs' rows)."""

import json

import pytest
from sqlalchemy import select, text

from services.dispatch.read_model import (
    dispatch_centers,
    dispatch_jobs,
    dispatch_technician_load,
    dispatch_technician_skills,
    dispatch_technicians,
    metadata,
)
from services.dispatch.rebuild import rebuild
from services.dispatch.tests.conftest import BACKENDS, assigned_job, cancelled_event
from shared.eventstore.store import EventStore
from shared.scheduling import deadlines
from shared.testing.app import eventually
from shared.testing.kafka import publish

TABLES = (
    dispatch_jobs,
    dispatch_centers,
    dispatch_technicians,
    dispatch_technician_skills,
    dispatch_technician_load,
    deadlines,
)


async def snapshot(db) -> dict[str, list[dict]]:
    tables = {}
    async with db.read() as conn:
        for table in TABLES:
            rows = (await conn.execute(select(table).order_by(*table.primary_key.columns))).all()
            tables[table.name] = [
                {**row._asdict(), **({"view": json.loads(row.view)} if "view" in row._fields else {})} for row in rows
            ]
    return tables


@pytest.mark.parametrize("dispatch", BACKENDS, indirect=True)
async def test_a_read_model_rebuilt_from_the_event_store_equals_the_live_one(staffed, event_bus):
    await staffed.center("C2", region="south", kind="authorized_dealer", dealer_id="D1")
    await staffed.technician_in("T2", "C2", skills=["tractor", "washer"])
    await staffed.client.patch("/v1/technicians/T2", json={"active": False}, headers=staffed.dispatcher)
    await staffed.client.patch("/v1/service-centers/C2", json={"name": "Dealer D1 South"}, headers=staffed.dispatcher)
    t1 = staffed.technician("T1")
    waiting = await assigned_job(staffed, event_bus)
    accepted = await assigned_job(staffed, event_bus, dealer_id="D1")
    await staffed.step(accepted["id"], "accept", t1)
    revisited = await assigned_job(staffed, event_bus)
    for action, body in [("accept", {}), ("arrive", {}), ("complete", {"fixed": True, "resolution": "ok"})]:
        await staffed.step(revisited["id"], action, t1, **body)
    await staffed.step(revisited["id"], "revisit", staffed.auth("agent"), satisfaction=4, channel="sms")
    cancelled = await assigned_job(staffed, event_bus)
    await publish(event_bus, cancelled_event(cancelled["request_id"]))
    await eventually(
        lambda: staffed.get_json(f"/v1/jobs/{cancelled['id']}"), until=lambda j: j["status"] == "cancelled"
    )
    await staffed.technician_in("T3", "C1", skills=["tractor"])
    moved = await assigned_job(staffed, event_bus)
    assert moved["technician_id"] == "T3", "the least loaded"
    reassigned = await staffed.step(moved["id"], "assign", staffed.dispatcher, technician_id="T1")
    assert reassigned.status_code == 200, reassigned.text

    db = staffed.app.state.runtime.db
    live = await snapshot(db)
    counts = await rebuild(db, EventStore(source="dispatch"))
    assert counts == {"job": 5, "service_center": 2, "technician": 3}
    assert await snapshot(db) == live
    open_jobs: dict[str, int] = {}
    for row in live["dispatch_jobs"]:
        if row["is_load"]:
            open_jobs[row["technician_id"]] = open_jobs.get(row["technician_id"], 0) + 1
    load = {row["technician_id"]: row["open_jobs"] for row in live["dispatch_technician_load"]}
    assert load == open_jobs == {"T1": 3}, "waiting, moved and accepted; the completed and cancelled ones left"
    assert waiting["id"] in {row["job_id"] for row in live["dispatch_jobs"]}


async def test_a_database_from_before_the_load_table_gets_it_filled_with_the_open_jobs_when_created(staffed, event_bus):
    first = await assigned_job(staffed, event_bus)
    second = await assigned_job(staffed, event_bus)
    assert first["technician_id"] == second["technician_id"] == "T1"
    db = staffed.app.state.runtime.db
    async with db.transaction() as conn:
        await conn.execute(text("DROP TABLE dispatch_technician_load"))  # as before migration 0002
    await db.create_all(metadata)  # what a service starting with DATABASE_AUTO_CREATE does
    async with db.transaction() as conn:
        load = (await conn.execute(select(dispatch_technician_load))).all()
    assert [(row.technician_id, row.open_jobs) for row in load] == [("T1", 2)]
