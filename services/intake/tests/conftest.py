"""An intake service per test: its own SQLite file and consumer group, the session's real Kafka broker."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.intake.app import IntakeSettings, create_app
from services.intake.reactions import CONSUMES
from shared.testing.app import bearer, running


@dataclass
class Intake:
    client: httpx.AsyncClient
    settings: IntakeSettings
    app: object

    def auth(self, *roles: str, dealer_id: str | None = None, sub: str | None = None) -> dict[str, str]:
        return bearer(self.settings, *roles, dealer_id=dealer_id, sub=sub)

    @property
    def agent(self) -> dict[str, str]:
        return self.auth("agent")

    async def open(self, serial: str | None = None, headers: dict | None = None, **fields) -> httpx.Response:
        body = new_request_body(serial or f"SN-{uuid.uuid4().hex[:10]}", **fields)
        return await self.client.post("/v1/service-requests", json=body, headers=headers or self.agent)


def new_request_body(serial: str, **fields) -> dict:
    body = {
        "channel": "hotline",
        "customer": {"name": "Ann Farmer", "phone": "+49 170 5550101", "region": "north"},
        "product": {"serial": serial, "model": "T-100", "product_line": "tractor"},
        "purchase_date": "2025-03-01",
        "symptom": "Engine stalls when cold",
    }
    body.update(fields)
    return body


def intake_settings(tmp_path, kafka_bootstrap: str, **overrides) -> IntakeSettings:
    """A test intake's settings. Its consumer group starts at the current end of every topic intake follows
    that the group has no offset in yet: intake follows all four topics (its webhooks deliver every one), and
    catching up with every earlier test's events would only slow the test down."""
    values = dict(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/intake.db",
        kafka_bootstrap=kafka_bootstrap,
        consumer_group=f"intake-test-{uuid.uuid4().hex[:8]}",
        relay_poll_interval_ms=50,
        log_json=False,
    )
    values.update(overrides)
    settings = IntakeSettings(**values)
    start_at_end(kafka_bootstrap, settings.consumer_group, CONSUMES)
    return settings


def start_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    """Commit `group`'s offsets at the end of those of `topics`' partitions it has none in (callable from a
    test's event loop too: it runs on a loop of its own, in a thread)."""

    async def commit_ends() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(topics)
        finally:
            await admin.close()
        partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            untouched = [tp for tp in partitions if await consumer.committed(tp) is None]
            if untouched:
                await consumer.commit(await consumer.end_offsets(untouched))
        finally:
            await consumer.stop()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, commit_ends()).result()


@pytest.fixture
async def intake(tmp_path, kafka_bootstrap):
    settings = intake_settings(tmp_path, kafka_bootstrap)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        yield Intake(client, settings, app)
