"""Shared pieces of intake's webhook tests: an intake whose webhooks may target the loopback receiver (an
allowed host, over plain http), with retries in fractions of a second."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from datetime import timedelta

from standardwebhooks import Webhook

from services.intake.app import create_app
from services.intake.tests.conftest import Intake, intake_settings, new_request_body
from services.intake.tests.webhook_receiver import Received
from shared.clock import utcnow
from shared.contracts.complaints import ComplaintAcknowledged, ComplaintOpened
from shared.testing.app import eventually, running
from shared.testing.contract_events import complaint_opened

FAST = dict(
    webhook_allowed_hosts="127.0.0.1",
    webhook_allow_http_for_allowed_hosts=True,
    webhook_timeout_seconds=1.0,
    webhook_retry_schedule="0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
    webhook_poll_interval_ms=50,
)


@asynccontextmanager
async def webhook_intake(tmp_path, event_bus, clock=None, **overrides):
    settings = intake_settings(tmp_path, event_bus, **{**FAST, **overrides})
    app = create_app(settings, clock=clock, configure_logs=False)
    async with running(app) as client:
        yield Intake(client, settings, app)


def dealer() -> str:
    return f"D-{uuid.uuid4().hex[:8]}"


async def subscribe(intake: Intake, url: str, types: list[str], dealer_id: str | None = None, **body) -> dict:
    headers = intake.auth("dealer", dealer_id=dealer_id) if dealer_id else intake.auth("admin")
    answer = await intake.client.post("/v1/webhooks", json={"url": url, "types": types, **body}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def open_for(intake: Intake, dealer_id: str) -> str:
    body = new_request_body(f"SN-{uuid.uuid4().hex[:10]}", channel="dealer")
    answer = await intake.client.post(
        "/v1/service-requests", json=body, headers=intake.auth("dealer", dealer_id=dealer_id)
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def verified(received: Received, secret: str) -> dict:
    """The delivery's event, if its signature verifies with `secret` (raises otherwise)."""
    return Webhook(secret).verify(received.body, received.headers)


def complaint_about_job(complaint_id: str, job_id: str) -> ComplaintOpened:
    return complaint_opened(
        complaint_id, utcnow(), job_id=job_id, acknowledge_within=timedelta(hours=4), resolve_within=timedelta(days=3)
    )


def acknowledged(complaint_id: str) -> ComplaintAcknowledged:
    return ComplaintAcknowledged(complaint_id=complaint_id)


async def until_received(receiver, count: int, predicate=lambda e: True, timeout: float = 30.0):
    return await eventually(
        lambda: _async(receiver.events(predicate)), until=lambda events: len(events) >= count, timeout=timeout
    )


async def _async(value):
    return value
