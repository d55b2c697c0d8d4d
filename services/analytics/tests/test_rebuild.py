"""Rebuild: replaying the topics from their beginning into a fresh generation ends with the same fact versions
as the live consumer folded, while the views keep answering from the old one; an event handled during the
replay is not lost; the command rebuilds a stopped analytics' file and refuses a running one's."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta

from services.analytics.app import create_app
from services.analytics.facts import FOREVER
from services.analytics.projection import Projection, Tables
from services.analytics.replay import rebuild
from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import analytics_settings, unique
from services.analytics.tests.test_paid_service_http import paid_requests
from shared.clock import utcnow
from shared.testing.app import bearer, eventually, running
from shared.testing.kafka import caught_up, publish


def small_history(dealer: str, region: str, t0, count: int = 4) -> list:
    events = []
    keys = dict(dealer_id=dealer, region=region, product_line="pump")
    for i in range(count):
        rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
        start = t0 + timedelta(hours=i)
        events += [
            ev.received(rid, start, **keys),
            ev.triaged(rid, start + timedelta(minutes=5), mode="onsite"),
            ev.job_created(jid, rid, start + timedelta(minutes=5), **keys),
            ev.assigned(jid, rid, start + timedelta(minutes=6), center_id="C-R", technician_id="T-R"),
        ]
        if i % 2 == 0:
            events += [
                ev.completed(jid, rid, start + timedelta(hours=3), "T-R", fixed=i == 0),
                ev.revisit(jid, rid, start + timedelta(hours=5), 4 + i % 2, 9),
            ]
    return events


def _rows(projection: Projection, number: int) -> tuple[list, ...]:
    cur = projection.reader()
    try:
        tables = Tables(number)
        return tuple(
            cur.execute(f"SELECT * FROM {getattr(tables, name)} ORDER BY ALL").fetchall()
            for name in ("requests", "jobs", "revisits")
        )
    finally:
        cur.close()


def _open_versions_stored_last(projection: Projection, number: int) -> bool:
    """In each fact table, the versions that still hold come after the ones that stopped (row order), so that the
    live views' filter on `valid_to` skips the others' row groups, and those that stopped are in the order they
    stopped, so that an `as_of`'s does (`projection.cluster_open_versions`)."""
    cur = projection.reader()
    try:
        for name in ("requests", "jobs", "revisits"):
            table = getattr(Tables(number), name)
            last_closed, first_open, opened = cur.execute(
                f"SELECT max(rowid) FILTER (WHERE valid_to <> {FOREVER}), min(rowid) FILTER (WHERE valid_to = "
                f"{FOREVER}), count(*) FILTER (WHERE valid_to = {FOREVER}) FROM {table}"
            ).fetchall()[0]
            assert opened, name  # the history has versions that still hold, and
            if last_closed is not None and last_closed > first_open:
                return False
            stopped = [
                r[0]
                for r in cur.execute(
                    f"SELECT valid_to FROM {table} WHERE valid_to <> {FOREVER} ORDER BY rowid"
                ).fetchall()
            ]
            if stopped != sorted(stopped):
                return False
        return True
    finally:
        cur.close()


async def snapshot(projection: Projection, number: int) -> tuple[list, ...]:
    """Every fact version of a generation (requests, jobs, revisits)."""
    return await asyncio.to_thread(_rows, projection, number)


async def state_of(projection: Projection):
    return await asyncio.to_thread(projection.state, projection.reader())


async def quiet(app) -> None:
    """Wait until the live consumer has read everything published so far (its group's lag is 0)."""
    await caught_up(app)


async def test_a_rebuild_ends_with_the_same_numbers_and_the_views_answer_all_along(analytics, event_bus):
    dealer, region = unique("D"), unique("plain")
    t0 = (utcnow() - timedelta(days=2)).replace(hour=5, minute=0, second=0, microsecond=0)
    paid, _, _ = paid_requests(unique("D"), t0)  # quotes decided every way, a part on backorder, a late sync
    await publish(event_bus, *small_history(dealer, region, t0), *paid)
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=2)).date().isoformat()}
    await analytics.rows_when("scorecard", lambda r: r.get(dealer, {}).get("first_time_fix_pct") == 50.0, **window)
    projection = analytics.app.state.projection
    await quiet(analytics.app)
    before = await analytics.rows("scorecard", **window)
    old = (await state_of(projection)).active
    live_facts = await snapshot(projection, old)

    started = await analytics.client.post("/v1/admin/rebuild", headers=analytics.auth("admin"))
    assert started.status_code == 202 and started.json()["state"] == "running"
    assert (await analytics.client.post("/v1/admin/rebuild", headers=analytics.auth("admin"))).status_code == 409
    while (status := (await analytics.client.get("/v1/admin/rebuild", headers=analytics.auth("admin"))).json())[
        "state"
    ] == "running":
        assert (await analytics.rows("scorecard", **window))[dealer] == before[dealer]  # still the old tables
        await asyncio.sleep(0.02)
    assert status["state"] == "succeeded", status["error"]
    assert status["report"]["generation"] == old + 1 == (await state_of(projection)).active
    assert status["report"]["records_read"] >= status["report"]["events_stored"] > 0

    assert await snapshot(projection, old + 1) == live_facts
    assert await asyncio.to_thread(_open_versions_stored_last, projection, old + 1)
    for view in ("throughput", "satisfaction", "scorecard"):
        assert (await analytics.rows(view, **window))[dealer] is not None
    assert (await analytics.rows("scorecard", **window))[dealer] == before[dealer]


async def test_an_event_the_live_consumer_handles_during_the_replay_reaches_the_new_tables(analytics, event_bus):
    dealer, region = unique("D"), unique("delta")
    t0 = (utcnow() - timedelta(days=1)).replace(hour=4, minute=0, second=0, microsecond=0)
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=1)).date().isoformat()}
    projection = analytics.app.state.projection

    async def publish_while_replaying(stage, message):
        if stage == "replayed":  # the end offsets are behind us: only the live consumer will see this event
            await publish(
                event_bus,
                ev.received(str(uuid.uuid4()), t0, dealer_id=dealer, region=region, product_line="pump"),
            )
            await analytics.rows_when("throughput", lambda r: dealer in r, **window)

    report = await rebuild(projection, event_bus, on_progress=publish_while_replaying)
    assert (await state_of(projection)).active == report.generation
    assert report.late_requests >= 1
    assert (await analytics.rows("throughput", **window))[dealer]["received"] == 1


async def run_rebuild_command(settings) -> tuple[int, str]:
    env = {
        **os.environ,
        "ANALYTICS_DUCKDB_PATH": settings.analytics_duckdb_path,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LOG_JSON": "false",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.analytics.rebuild",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    return process.returncode, output.decode()


async def test_the_rebuild_command_rebuilds_a_stopped_analytics_and_refuses_the_file_of_a_running_one(
    tmp_path, kafka_bootstrap
):
    dealer, region = unique("D"), unique("cove")
    t0 = (utcnow() - timedelta(days=2)).replace(hour=6, minute=0, second=0, microsecond=0)
    await publish(kafka_bootstrap, *small_history(dealer, region, t0))
    settings = analytics_settings(tmp_path, kafka_bootstrap)
    app = create_app(settings, configure_logs=False)
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=2)).date().isoformat()}
    async with running(app) as client:
        params = {("from" if k == "from_" else k): v for k, v in window.items()}

        async def scorecard():
            response = await client.get("/v1/views/scorecard", params=params, headers=bearer(settings, "analyst"))
            return {r["key"]: r for r in response.json()["rows"]}

        before = await eventually(scorecard, until=lambda r: r.get(dealer, {}).get("first_time_fix_pct") == 50.0)
        await quiet(app)
        code, output = await run_rebuild_command(settings)
        assert code == 2 and "POST /v1/admin/rebuild" in output
        facts = await snapshot(app.state.projection, 1)

    code, output = await run_rebuild_command(settings)
    assert code == 0, output
    assert "generation 2 is active" in output
    projection = Projection(settings.analytics_duckdb_path)
    try:
        assert projection.state(projection.reader()).active == 2
        assert await snapshot(projection, 2) == facts
    finally:
        projection.close()
    async with running(create_app(settings, configure_logs=False)) as client:
        response = await client.get("/v1/views/scorecard", params=params, headers=bearer(settings, "analyst"))
        assert {r["key"]: r for r in response.json()["rows"]}[dealer] == before[dealer]


async def test_a_reader_open_across_the_switch_keeps_its_generation_and_the_rebuilt_one_stays_live(
    analytics, event_bus
):
    """A snapshot still reading the old generation makes DuckDB refuse the rebuild's closing checkpoint; the
    switch has committed by then, so the new generation stays (it used to be dropped as if the rebuild had
    failed, and every view answered 500 with its tables missing)."""
    dealer, region = unique("D"), unique("held")
    t0 = (utcnow() - timedelta(days=2)).replace(hour=6, minute=0, second=0, microsecond=0)
    await publish(event_bus, *small_history(dealer, region, t0))
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=2)).date().isoformat()}
    await analytics.rows_when("throughput", lambda r: r.get(dealer, {}).get("received") == 4, **window)
    projection = analytics.app.state.projection
    await quiet(analytics.app)

    held, old = projection.snapshot()
    try:
        count = f"SELECT count(*) FROM {old.requests} WHERE dealer_id = ?"
        before = held.execute(count, [dealer]).fetchall()
        report = await rebuild(projection, event_bus)
        assert report.generation == old.number + 1 == (await state_of(projection)).active
        assert held.execute(count, [dealer]).fetchall() == before != [(0,)]  # still its own generation
    finally:
        held.close()

    params = {"from": window["from_"], "to": window["to"], "group_by": "dealer"}
    for path in ("/v1/views/handoffs", "/v1/views/rework", "/v1/views/variants", "/v1/views/process-findings"):
        answer = await analytics.client.get(path, params=params, headers=analytics.auth("admin"))
        assert answer.status_code == 200, (path, answer.text)
    assert (await analytics.rows("throughput", **window))[dealer]["received"] == 4
    second = await rebuild(projection, event_bus)  # and the leftover generation is no obstacle
    assert (await state_of(projection)).active == second.generation == report.generation + 1


def test_the_replay_keeps_one_copy_of_each_event_it_read_more_than_once():
    """A record written twice (a producer's retry) is appended twice by the replay; one copy is kept, whole."""
    from services.analytics.projection import create_tables
    from services.analytics.replay import _deduplicate
    from services.analytics.tests.test_facts import history

    events = history()
    projection = Projection(":memory:")
    cur = projection.reader()
    try:
        tables = Tables(2)
        create_tables(cur, tables, indexes=False)
        projection.append_events(cur, tables.events, events)
        assert _deduplicate(cur, tables) == 0
        projection.append_events(cur, tables.events, [events[0], events[3], events[3]])
        assert _deduplicate(cur, tables) == 3
        stored = cur.execute(f"SELECT event_id, type, time, recorded_at FROM {tables.events} ORDER BY ALL").fetchall()
        assert stored == sorted((e.event_id, e.type, e.time, e.recorded_at) for e in events)
    finally:
        cur.close()
        projection.close()
