"""Rebuild: replaying the topics from their beginning into fresh tables ends with the same numbers, while the
views keep answering from the old tables; an event handled during the replay is not lost."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from services.analytics.replay import rebuild
from services.analytics.store import read_state
from services.analytics.tables import generation
from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import unique
from shared.clock import utcnow
from shared.testing.app import eventually
from shared.testing.kafka import publish


def small_history(dealer: str, region: str, t0, count: int = 4) -> list:
    events = []
    keys = dict(dealer_id=dealer, region=region, product_line="pump")
    for i in range(count):
        rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
        start = t0 + timedelta(hours=i)
        events += [ev.received(rid, start, **keys), ev.triaged(rid, start + timedelta(minutes=5), mode="onsite"),
                   ev.job_created(jid, rid, start + timedelta(minutes=5), **keys),
                   ev.assigned(jid, rid, start + timedelta(minutes=6), center_id="C-R", technician_id="T-R")]
        if i % 2 == 0:
            events += [ev.completed(jid, rid, start + timedelta(hours=3), "T-R", fixed=i == 0),
                       ev.revisit(jid, rid, start + timedelta(hours=5), 4 + i % 2, 9)]
    return events


async def snapshot(db, number: int) -> tuple[list, list]:
    tables = generation(number)
    async with db.read() as conn:
        requests = (await conn.execute(select(tables.requests).order_by(tables.requests.c.request_id))).all()
        revisits = (await conn.execute(select(tables.revisits).order_by(tables.revisits.c.event_id))).all()
    return [tuple(r) for r in requests], [tuple(r) for r in revisits]


async def state_of(db):
    async with db.read() as conn:
        return await read_state(conn)


async def quiet(db) -> None:
    """Wait until the live consumer has stopped storing events (it has read everything published so far)."""
    async def stored():
        async with db.read() as conn:
            tables = generation((await read_state(conn)).active)
            count = (await conn.execute(select(func.count()).select_from(tables.events))).scalar_one()
        await asyncio.sleep(0.7)
        async with db.read() as conn:
            again = (await conn.execute(select(func.count()).select_from(tables.events))).scalar_one()
        return count == again
    await eventually(stored, until=bool, timeout=30)


async def test_a_rebuild_ends_with_the_same_numbers_and_the_views_answer_all_along(analytics, kafka_bootstrap):
    dealer, region = unique("D"), unique("plain")
    t0 = (utcnow() - timedelta(days=2)).replace(hour=5, minute=0, second=0, microsecond=0)
    await publish(kafka_bootstrap, *small_history(dealer, region, t0))
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=2)).date().isoformat()}
    await analytics.rows_when("scorecard", lambda r: r.get(dealer, {}).get("first_time_fix_pct") == 50.0, **window)
    db = analytics.app.state.runtime.db
    await quiet(db)
    before = await analytics.rows("scorecard", **window)
    old = (await state_of(db)).active
    live_facts = await snapshot(db, old)

    started = await analytics.client.post("/v1/admin/rebuild", headers=analytics.auth("admin"))
    assert started.status_code == 202 and started.json()["state"] == "running"
    assert (await analytics.client.post("/v1/admin/rebuild", headers=analytics.auth("admin"))).status_code == 409
    while (status := (await analytics.client.get("/v1/admin/rebuild", headers=analytics.auth("admin"))).json()
           )["state"] == "running":
        assert (await analytics.rows("scorecard", **window))[dealer] == before[dealer]  # still the old tables
        await asyncio.sleep(0.02)
    assert status["state"] == "succeeded", status["error"]
    assert status["report"]["generation"] == old + 1 == (await state_of(db)).active
    assert status["report"]["records_read"] >= status["report"]["events_stored"] > 0

    assert await snapshot(db, old + 1) == live_facts
    for view in ("throughput", "satisfaction", "scorecard"):
        assert (await analytics.rows(view, **window))[dealer] is not None
    assert (await analytics.rows("scorecard", **window))[dealer] == before[dealer]


async def test_an_event_the_live_consumer_handles_during_the_replay_reaches_the_new_tables(analytics, kafka_bootstrap):
    dealer, region = unique("D"), unique("delta")
    t0 = (utcnow() - timedelta(days=1)).replace(hour=4, minute=0, second=0, microsecond=0)
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=1)).date().isoformat()}
    db = analytics.app.state.runtime.db

    async def publish_while_replaying(stage, message):
        if stage == "replayed":  # the end offsets are behind us: only the live consumer will see this event
            await publish(kafka_bootstrap, ev.received(str(uuid.uuid4()), t0, dealer_id=dealer, region=region,
                                                       product_line="pump"))
            await analytics.rows_when("throughput", lambda r: dealer in r, **window)

    report = await rebuild(db, kafka_bootstrap, on_progress=publish_while_replaying)
    assert (await state_of(db)).active == report.generation
    assert (await analytics.rows("throughput", **window))[dealer]["received"] == 1


async def test_the_rebuild_command_replays_into_the_running_services_database(analytics, kafka_bootstrap):
    settings = analytics.settings
    db = analytics.app.state.runtime.db
    await quiet(db)
    before = (await state_of(db)).active
    facts = await snapshot(db, before)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "KAFKA_BOOTSTRAP": kafka_bootstrap,
           "LOG_JSON": "false"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.analytics.rebuild", env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, output.decode()
    assert f"generation {before + 1} is active" in output.decode()
    assert (await state_of(db)).active == before + 1
    assert await snapshot(db, before + 1) == facts
