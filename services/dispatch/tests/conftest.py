"""A dispatch service per test: its own SQLite file and consumer group, the session's broker (`event_bus`: in-process, unless a module points it at real Kafka).

Intake is played by publishing its CloudEvents to `intake.events` (or, end to end, by the real intake app).
Each test's consumer group starts at the current end of the topics it reads: the session's broker holds every
earlier test's events, and replaying them all in every test would only make the suite slow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from deploy.postgres.launcher import create_database
from services.dispatch.app import DispatchSettings, create_app
from services.dispatch.read_model import metadata
from shared.clock import utcnow
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import (
    Customer,
    Product,
    ServiceRequestCancelled,
    ServiceRequestReceived,
    ServiceRequestTriaged,
)
from shared.contracts.topics import INTAKE
from shared.eventstore.tables import events
from shared.testing.app import bearer, eventually, running
from shared.testing.database import settings_for_a_test
from shared.testing.kafka import envelope_for, publish, start_group_at_end  # noqa: F401  (start_group_at_end: for the tests here)


def dispatch_settings(tmp_path, event_bus: str, name: str = "dispatch", **overrides: Any) -> DispatchSettings:
    group = f"dispatch-test-{uuid.uuid4().hex[:8]}"
    return settings_for_a_test(
        DispatchSettings,
        metadata,
        f"{tmp_path}/{name}.db",
        event_bus,
        **{"consumer_group": group, "deadline_poll_interval_ms": 50, **overrides},
    )


@dataclass
class Dispatch:
    client: httpx.AsyncClient
    settings: DispatchSettings
    app: Any

    def auth(self, *roles: str, dealer_id: str | None = None, sub: str | None = None) -> dict[str, str]:
        return bearer(self.settings, *roles, dealer_id=dealer_id, sub=sub)

    @property
    def dispatcher(self) -> dict[str, str]:
        return self.auth("dispatcher")

    def technician(self, technician_id: str) -> dict[str, str]:
        return self.auth("technician", sub=technician_id)

    async def center(
        self, center_id: str, region: str = "north", kind: str = "repair_center", dealer_id: str | None = None
    ) -> httpx.Response:
        body = {"id": center_id, "name": f"Center {center_id}", "region": region, "kind": kind, "dealer_id": dealer_id}
        return await self.client.post("/v1/service-centers", json=body, headers=self.dispatcher)

    async def technician_in(
        self, technician_id: str, center_id: str, skills=("tractor",), active=True
    ) -> httpx.Response:
        body = {
            "id": technician_id,
            "center_id": center_id,
            "name": f"Tech {technician_id}",
            "skills": list(skills),
            "active": active,
        }
        return await self.client.post("/v1/technicians", json=body, headers=self.dispatcher)

    async def job_of(self, request_id: str, timeout: float = 20) -> dict:
        """The job dispatch made for a request, once its consumer got there."""
        page = await eventually(
            lambda: self.get_json(f"/v1/jobs?request_id={request_id}"),
            until=lambda p: len(p["items"]) == 1,
            timeout=timeout,
        )
        return page["items"][0]

    async def get_json(self, url: str, headers: dict | None = None) -> Any:
        return (await self.client.get(url, headers=headers or self.dispatcher)).json()

    async def step(self, job_id: str, action: str, headers: dict, **body: Any) -> httpx.Response:
        return await self.client.post(f"/v1/jobs/{job_id}/{action}", json=body or None, headers=headers)

    async def stream_types(self, stream_id: str) -> list[str]:
        async with self.app.state.runtime.db.read() as conn:
            rows = await conn.execute(
                select(events.c.type).where(events.c.stream_id == stream_id).order_by(events.c.version)
            )
            return [r.type for r in rows]


def request_events(
    *,
    region: str = "north",
    product_line: str = "tractor",
    dealer_id: str | None = None,
    mode: ServiceMode = ServiceMode.onsite,
    priority: Priority = Priority.P3,
    received_at: datetime | None = None,
    triaged_at: datetime | None = None,
    request_id: str | None = None,
):
    """`service_request.received` and `.triaged` envelopes as intake publishes them for one request."""
    request_id = request_id or str(uuid.uuid4())
    triaged_at = triaged_at or received_at or utcnow()
    received_at = received_at or triaged_at - timedelta(seconds=1)
    correlation = str(uuid.uuid4())
    received = ServiceRequestReceived(
        request_id=request_id,
        dealer_id=dealer_id,
        channel=Channel.dealer,
        customer=Customer(name="Ann Farmer", phone="+49 170 5550101", region=region),
        product=Product(serial=f"SN-{uuid.uuid4().hex[:10]}", model="T-100", product_line=product_line),
        purchase_date=date(2025, 3, 1),
        symptom="Engine stalls when cold",
        customer_tier=CustomerTier.standard,
        urgent=priority == Priority.P1,
    )
    triaged = ServiceRequestTriaged(request_id=request_id, mode=mode, priority=priority, note=None)
    return (
        envelope_for(received, source="intake", time=received_at, sequence=1, correlation_id=correlation),
        envelope_for(triaged, source="intake", time=triaged_at, sequence=2, correlation_id=correlation),
    )


def cancelled_event(request_id: str, at: datetime | None = None, sequence: int = 3):
    return envelope_for(
        ServiceRequestCancelled(request_id=request_id, reason="customer fixed it"),
        source="intake",
        time=at or utcnow(),
        sequence=sequence,
    )


async def triaged_request(event_bus: str, **fields: Any) -> str:
    received, triaged = request_events(**fields)
    await publish(event_bus, received, triaged)
    return received.subject


BACKENDS = ["sqlite", "postgresql"]  # for `@pytest.mark.parametrize("dispatch", BACKENDS, indirect=True)`


async def database_url_for(request, tmp_path, backend: str) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/dispatch.db"
    return await create_database(request.getfixturevalue("postgres_server"), f"dispatch_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def dispatch(request, tmp_path, event_bus):
    """On SQLite unless a test asks for another backend (indirect parametrization)."""
    url = await database_url_for(request, tmp_path, getattr(request, "param", "sqlite"))
    settings = dispatch_settings(tmp_path, event_bus, database_url=url)
    await start_group_at_end(event_bus, settings.consumer_group, [INTAKE])
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        yield Dispatch(client, settings, app)


@pytest.fixture
async def staffed(dispatch):
    """A dispatch service with a center in `north` and technician T1 skilled for tractors."""
    assert (await dispatch.center("C1")).status_code == 201
    assert (await dispatch.technician_in("T1", "C1")).status_code == 201
    return dispatch


async def assigned_job(dispatch: Dispatch, event_bus: str, **fields: Any) -> dict:
    """A job for a freshly triaged request, auto-assigned (needs a candidate, e.g. the `staffed` fixture)."""
    job = await dispatch.job_of(await triaged_request(event_bus, **fields))
    assert job["status"] == "assigned", job
    return job
