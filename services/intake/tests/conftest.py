"""An intake service per test: its own SQLite file and consumer group, the session's broker (`event_bus`: in-process, unless a module points it at real Kafka)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from services.intake.app import IntakeSettings, create_app
from services.intake.reactions import CONSUMES
from services.intake.read_model import metadata
from services.intake.tests.webhook_receiver import Receiver
from shared.clock import FixedClock
from shared.testing.app import bearer, running
from shared.testing.database import settings_for_a_test
from shared.testing.kafka import start_group_at_end_now


@dataclass
class Intake:
    client: httpx.AsyncClient
    settings: IntakeSettings
    app: object
    clock: FixedClock | None = None  # the test clock the app runs on, if any

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


def intake_settings(tmp_path, event_bus: str, **overrides) -> IntakeSettings:
    """A test intake's settings. Its consumer group starts at the current end of every topic intake follows
    that the group has no offset in yet: intake follows all four topics (its webhooks deliver every one), and
    catching up with every earlier test's events would only slow the test down."""
    group = f"intake-test-{uuid.uuid4().hex[:8]}"
    settings = settings_for_a_test(
        IntakeSettings, metadata, f"{tmp_path}/intake.db", event_bus, **{"consumer_group": group, **overrides}
    )
    start_group_at_end_now(event_bus, settings.consumer_group, CONSUMES, keep_committed=True)
    return settings


@pytest.fixture
async def receiver():
    """A dealer's webhook receiver on a loopback port (`webhook_receiver.Receiver`), answering 204."""
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def intake(tmp_path, event_bus):
    settings = intake_settings(tmp_path, event_bus)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        yield Intake(client, settings, app)
