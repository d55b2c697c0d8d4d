"""analytics with its SQL database on PostgreSQL (production's): the projection stays in DuckDB, the alerts and
what every service keeps go to PostgreSQL — views, `as_of`, alerts and a rebuild against a real server."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from deploy.postgres.launcher import create_database
from services.analytics.app import create_app
from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import Analytics, analytics_settings, unique
from services.analytics.tests.test_rebuild import quiet, snapshot, state_of
from shared.clock import rfc3339, utcnow
from shared.testing.app import eventually, running
from shared.testing.kafka import publish


@pytest.fixture
async def on_postgres(postgres_server, tmp_path, event_bus):
    url = await create_database(postgres_server, f"analytics_{uuid.uuid4().hex[:8]}")
    settings = analytics_settings(tmp_path, event_bus, database_url=url, alert_min_responses=1)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        yield Analytics(client, settings, app)


async def test_views_as_of_rebuild_and_alerts_work_the_same_on_postgresql(on_postgres, event_bus):
    analytics = on_postgres
    dealer, tech = unique("D"), unique("T")
    keys = dict(dealer_id=dealer, region=unique("r"), product_line="pump")
    t0 = (utcnow() - timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
    rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
    await publish(
        event_bus,
        ev.received(rid, t0, **keys, recorded_at=t0),
        ev.triaged(rid, t0 + timedelta(minutes=9), recorded_at=t0 + timedelta(minutes=9)),
        ev.job_created(jid, rid, t0 + timedelta(minutes=9), **keys),
        ev.assigned(jid, rid, t0 + timedelta(minutes=10), center_id="C-PG", technician_id=tech),
        ev.completed(jid, rid, t0 + timedelta(hours=3), tech, fixed=True, recorded_at=t0 + timedelta(days=1)),
        ev.revisit(jid, rid, t0 + timedelta(hours=30), 2, 4),
        ev.complaint(t0 + timedelta(hours=31), job_id=jid),
    )
    window = {"group_by": "dealer", "from_": t0.date().isoformat(), "to": (t0 + timedelta(days=2)).date().isoformat()}
    live = await analytics.rows_when(
        "throughput", lambda r: r.get(dealer, {}).get("complaint_rate_pct") == 100.0, **window
    )
    assert (live[dealer]["resolved"], live[dealer]["median_minutes_to_resolve"]) == (1, 180.0)
    earlier = await analytics.rows("throughput", as_of=rfc3339(t0 + timedelta(hours=12)), **window)
    assert (earlier[dealer]["resolved"], earlier[dealer]["backlog"]) == (0, 1)
    alerts = await eventually(
        lambda: analytics.client.get("/v1/views/alerts", params={"limit": 500}, headers=analytics.analyst),
        until=lambda r: dealer in r.text,
    )
    assert {a["kind"] for a in alerts.json()["items"] if a["key"] == dealer} == {"csat_below"}

    projection = analytics.app.state.projection
    await quiet(analytics.app)
    before = (await state_of(projection)).active
    facts = await snapshot(projection, before)
    started = await analytics.client.post("/v1/admin/rebuild", headers=analytics.auth("admin"))
    assert started.status_code == 202
    status = await eventually(
        lambda: analytics.client.get("/v1/admin/rebuild", headers=analytics.auth("admin")),
        until=lambda r: r.json()["state"] != "running",
        timeout=60,
    )
    assert status.json()["state"] == "succeeded", status.json()
    assert (await state_of(projection)).active == before + 1
    assert await snapshot(projection, before + 1) == facts
    assert (await analytics.rows("throughput", **window))[dealer] == live[dealer]
