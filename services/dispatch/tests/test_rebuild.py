"""The read model is a projection of the event store: rebuilt from the events, it equals the live one."""

import json

from sqlalchemy import select

from services.dispatch.read_model import (
    dispatch_centers,
    dispatch_jobs,
    dispatch_technician_skills,
    dispatch_technicians,
)
from services.dispatch.rebuild import rebuild
from services.dispatch.tests.conftest import assigned_job, cancelled_event
from shared.eventstore.store import EventStore
from shared.scheduling import deadlines
from shared.testing.app import eventually
from shared.testing.kafka import publish

TABLES = (dispatch_jobs, dispatch_centers, dispatch_technicians, dispatch_technician_skills, deadlines)


async def snapshot(db) -> dict[str, list[dict]]:
    tables = {}
    async with db.read() as conn:
        for table in TABLES:
            rows = (await conn.execute(select(table).order_by(*table.primary_key.columns))).all()
            tables[table.name] = [
                {**row._asdict(), **({"view": json.loads(row.view)} if "view" in row._fields else {})} for row in rows
            ]
    return tables


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

    db = staffed.app.state.runtime.db
    live = await snapshot(db)
    counts = await rebuild(db, EventStore(source="dispatch"))
    assert counts == {"job": 4, "service_center": 2, "technician": 2}
    assert await snapshot(db) == live
    assert waiting["id"] in {row["job_id"] for row in live["dispatch_jobs"]}
