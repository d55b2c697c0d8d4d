"""Two replicas of a consuming service in one consumer group, sharing a PostgreSQL database: killing one
mid-load loses nothing and counts nothing twice."""

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import text

from deploy.kafka.launcher import free_port
from deploy.postgres.launcher import create_database
from deploy.scale import start_replicas
from shared.auth import mint_token
from shared.contracts.topics import INTAKE
from shared.contracts.warranty import WarrantyChecked
from shared.eventstore import Database
from shared.settings import ServiceSettings
from shared.testing.app import eventually
from shared.testing.kafka import collect, envelope_for, headers_of, publish

pytestmark = pytest.mark.kafka


async def open_request(client: httpx.AsyncClient, base_url: str, serial: str) -> str:
    """A request for the unit `serial` opened at the intake replica at `base_url`; its id."""
    response = await client.post(
        f"{base_url}/v1/service-requests",
        json={
            "channel": "app",
            "customer": {"name": "S", "phone": "+300", "region": "east"},
            "product": {"serial": serial, "model": "M", "product_line": "mower"},
            "symptom": "blade stuck",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_killing_one_of_two_replicas_mid_load_loses_nothing_and_counts_nothing_twice(
    postgres_server, kafka_bootstrap, tmp_path
):
    database_url = await create_database(postgres_server, f"scale_{uuid.uuid4().hex[:8]}")
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "CONSUMER_GROUP": f"intake-scale-{uuid.uuid4().hex[:6]}",
        "CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "RELAY_LEASE_SECONDS": "2",
        "RELAY_POLL_INTERVAL_MS": "50",
        "LOG_JSON": "false",
    }
    ports = [free_port(), free_port()]
    replicas = await asyncio.to_thread(start_replicas, "intake", 2, env, tmp_path / "logs", ports)
    token = mint_token(ServiceSettings().auth_secret, subject="agent", roles=["agent"])
    headers = {"Authorization": f"Bearer {token}"}
    db = Database(database_url)
    try:
        async with httpx.AsyncClient(headers=headers, timeout=10) as client:
            ids = []
            for i in range(40):
                ids.append(await open_request(client, replicas[i % 2].url, f"SC-{uuid.uuid4().hex[:8]}"))

            verdicts = [
                envelope_for(
                    WarrantyChecked(request_id=i, serial="s", covered=True, reason="in warranty"), source="warranty"
                )
                for i in ids
            ]
            await publish(kafka_bootstrap, *verdicts[:20])
            await eventually(lambda: coverage_count(db, ids), until=lambda n: n >= 5, timeout=30)
            replicas[0].kill()
            await publish(kafka_bootstrap, *verdicts[20:], *verdicts[:10])  # and some again, as after a crash

            survivor = replicas[1]
            for _ in range(5):
                ids.append(await open_request(client, survivor.url, f"SC-late-{uuid.uuid4().hex[:8]}"))

            await eventually(lambda: coverage_count(db, ids[:40]), until=lambda n: n == 40, timeout=60)
            await asyncio.sleep(1.0)  # a double effect, if any, would land now
            per_request = await coverage_events_per_request(db, ids[:40])
            assert per_request == {i: 1 for i in ids[:40]}, "every verdict applied exactly once"
            await eventually(lambda: outbox_size(db), until=lambda n: n == 0, timeout=30)

        records = await collect(
            kafka_bootstrap,
            INTAKE,
            lambda r: r.key.decode() in set(ids),
            expected=len(ids) + 40,
            timeout=30,
            settle=1.0,
        )
        by_type: dict[str, set[str]] = {}
        for record in records:
            h = headers_of(record)
            by_type.setdefault(h["ce_type"], set()).add(h["ce_id"])
        assert len(by_type["service_request.received"]) == len(ids), "every accepted request reached Kafka"
        assert len(by_type["service_request.coverage_recorded"]) == 40
    finally:
        for replica in replicas:
            replica.stop()
        await db.dispose()


async def coverage_count(db, ids) -> int:
    per_request = await coverage_events_per_request(db, ids)
    return len(per_request)


async def coverage_events_per_request(db, ids) -> dict[str, int]:
    async with db.read() as conn:
        rows = await conn.execute(
            text(
                "SELECT stream_id, count(*) AS n FROM events WHERE type = 'service_request.coverage_recorded' "
                "GROUP BY stream_id"
            )
        )
        return {r.stream_id: r.n for r in rows if r.stream_id in set(ids)}


async def outbox_size(db) -> int:
    async with db.read() as conn:
        return (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
