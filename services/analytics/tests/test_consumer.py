"""The batch consumer through real Kafka: every event of the four topics is kept (without the customer's name
and phone), a malformed record goes to the DLQ while the rest of its batch is applied, and an analytics process
killed in the middle of its batches loses nothing and counts nothing twice after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from datetime import timedelta

import httpx

from deploy.kafka.launcher import free_port
from services.analytics.app import AnalyticsSettings
from services.analytics.facts import fold_all
from services.analytics.metrics import Window
from services.analytics.records import analytics_event
from services.analytics.tests import builders as ev
from services.analytics.tests.conftest import unique
from services.analytics.views import GroupBy, throughput_rows
from shared.clock import utcnow
from shared.contracts.base import REGISTRY
from shared.contracts.topics import INTAKE, dlq_for
from shared.contracts.warranty import WarrantyChecked
from shared.messaging.cloudevents import to_record
from shared.testing.app import bearer, eventually
from shared.testing.kafka import collect, group_at_end, headers_of, publish, publish_raw


async def test_every_event_is_kept_without_personal_data_and_a_malformed_one_goes_to_the_dlq(analytics, event_bus):
    request_id = str(uuid.uuid4())
    t0 = utcnow() - timedelta(hours=3)
    good = ev.received(request_id, t0, dealer_id=unique("D"), region=unique("r"), product_line="pump")
    checked = ev.stamped(WarrantyChecked(request_id=request_id, serial="SN-1", covered=True, reason="ok"), t0)
    topic, key, value, headers = to_record(
        ev.received(str(uuid.uuid4()), t0, dealer_id="D", region="r", product_line="pump")
    )
    await publish_raw(event_bus, topic, b'{"request_id": 42}', key=key, headers=headers)
    await publish(event_bus, good, checked)

    dead = await collect(event_bus, dlq_for(INTAKE), lambda r: r.key == key, expected=1)
    assert "invalid data" in headers_of(dead[0])["dlq_reason"]
    projection = analytics.app.state.projection

    def stored():
        cur = projection.reader()
        try:
            return cur.execute(
                f"SELECT type, topic, subject, request_id, data FROM "
                f"{projection.active_tables(cur).events} WHERE request_id = ? ORDER BY type",
                [request_id],
            ).fetchall()
        finally:
            cur.close()

    rows = await eventually(lambda: asyncio.to_thread(stored), until=lambda r: len(r) == 2)
    (received_type, received_topic, subject, _, received_data), (checked_type, *_, checked_data) = rows
    assert (received_type, received_topic, subject) == ("service_request.received", INTAKE, request_id)
    customer = json.loads(received_data)["customer"]
    assert "name" not in customer and "phone" not in customer and customer["region"]
    assert "Ann Farmer" not in received_data and "5550101" not in received_data
    assert checked_type == "warranty.checked" and json.loads(checked_data)["covered"] is True


def _settings_env(tmp_path, kafka_bootstrap: str, group: str, port: int) -> dict:
    return {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CONSUMER_GROUP": group,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/killed.db",
        "ANALYTICS_DUCKDB_PATH": f"{tmp_path}/killed.duckdb",
        "ANALYTICS_BATCH_SIZE": "50",
        "LOG_JSON": "false",
        "LOG_LEVEL": "WARNING",
    }


async def test_an_analytics_killed_mid_batch_loses_nothing_and_counts_nothing_twice_after_a_restart(
    tmp_path, kafka_bootstrap
):
    region = unique("killed")
    t0 = (utcnow() - timedelta(days=1)).replace(hour=1, minute=0, second=0, microsecond=0)
    envelopes = []
    for i in range(600):
        rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
        keys = dict(dealer_id=f"D{i % 3}", region=region, product_line="pump")
        start = t0 + timedelta(seconds=20 * i)
        envelopes += [
            ev.received(rid, start, **keys),
            ev.triaged(rid, start + timedelta(minutes=5)),
            ev.job_created(jid, rid, start + timedelta(minutes=5), **keys),
            ev.assigned(jid, rid, start + timedelta(minutes=6), center_id="C", technician_id="T"),
            ev.completed(jid, rid, start + timedelta(minutes=90), "T", fixed=i % 4 != 0),
        ]
    group = await group_at_end(
        kafka_bootstrap,
        ["intake.events", "dispatch.events", "warranty.events", "complaints.events"],
        "analytics-killed",
    )
    # The first half is on the topics before the start, the second half is published just before the kill:
    # however fast the machine, the process is killed with events still to consume.
    half = len(envelopes) // 2
    await publish(kafka_bootstrap, *envelopes[:half])
    port = free_port()
    env = _settings_env(tmp_path, kafka_bootstrap, group, port)
    settings = AnalyticsSettings(kafka_bootstrap=kafka_bootstrap)
    params = {"group_by": "region", "from": t0.date().isoformat(), "to": (t0 + timedelta(days=1)).date().isoformat()}

    async def received(client) -> int:
        try:
            response = await client.get("/v1/views/throughput", params=params, headers=bearer(settings, "analyst"))
        except httpx.HTTPError:
            return -1
        rows = {r["key"]: r for r in response.json()["rows"]} if response.status_code == 200 else {}
        return rows.get(region, {}).get("received", 0)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.analytics", env=env)
        try:
            partly = await eventually(lambda: received(client), until=lambda n: n > 0, timeout=60, interval=0.02)
            await publish(kafka_bootstrap, *envelopes[half:])
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert 0 < partly < 600, "the process was to be killed while it was still consuming"
        events = [
            analytics_event(e, REGISTRY.get(e.type, e.schema_version).model_validate_json(e.data)) for e in envelopes
        ]
        requests, _ = fold_all(events)
        window = Window.of_dates(t0.date(), (t0 + timedelta(days=1)).date())
        expected = throughput_rows(requests, window, GroupBy.region)

        async def row(client) -> dict | None:
            response = await client.get("/v1/views/throughput", params=params, headers=bearer(settings, "analyst"))
            return {r["key"]: r for r in response.json()["rows"]}.get(region) if response.status_code == 200 else None

        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.analytics", env=env)
        try:
            await eventually(lambda: received(client), until=lambda n: n == 600, timeout=90)
            # Every event applied: the row stops changing once it equals the fold of all of them (or the deadline).
            live = await eventually(
                lambda: row(client), until=lambda r: r == {**expected[0], "key": region}, timeout=60
            )
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    assert live == {**expected[0], "key": region}
