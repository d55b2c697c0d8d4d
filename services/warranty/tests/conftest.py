"""A warranty service per test: its own SQLite file, a fixed clock that starts at the real now (tests move
it), and a consumer group of its own on the session's broker (`event_bus`: in-process, unless a module points it at real Kafka), positioned at the current end of
the topics, so that a test sees the events it publishes and not those of every test before it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
import pytest

from deploy.postgres.launcher import create_database
from services.warranty.app import WarrantySettings, create_app
from services.warranty.read_model import metadata
from shared.clock import FixedClock, utcnow
from shared.contracts.dispatch import AssignedBy, JobAssigned, JobCompleted, JobCreated
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import Customer, Product, ServiceRequestReceived
from shared.contracts.topics import DISPATCH, INTAKE
from shared.testing.app import bearer, eventually, running
from shared.testing.database import settings_for_a_test
from shared.testing.kafka import envelope_for, group_at_end, publish  # noqa: F401  (group_at_end: for the tests here)


async def warranty_settings(tmp_path, event_bus: str, **overrides) -> WarrantySettings:
    group = await group_at_end(event_bus, [INTAKE, DISPATCH], "warranty-test")
    database = f"{tmp_path}/warranty-{uuid.uuid4().hex[:6]}.db"
    return settings_for_a_test(
        WarrantySettings, metadata, database, event_bus, **{"consumer_group": group, **overrides}
    )


@dataclass
class Warranty:
    client: httpx.AsyncClient
    settings: WarrantySettings
    app: object
    clock: FixedClock
    kafka: str

    def auth(self, *roles: str, dealer_id: str | None = None, sub: str | None = None) -> dict[str, str]:
        return bearer(self.settings, *roles, dealer_id=dealer_id, sub=sub)

    @property
    def officer(self) -> dict[str, str]:
        return self.auth("warranty_officer", sub="officer-olga")

    def dealer(self, dealer_id: str) -> dict[str, str]:
        return self.auth("dealer", dealer_id=dealer_id)

    @property
    def today(self) -> date:
        return self.clock.now().date()

    def catch_up_with_real_time(self) -> None:
        """Other services in the test run on the real clock: bring ours up to it."""
        self.clock.advance(seconds=max(0.0, (utcnow() - self.clock.now()).total_seconds()))

    async def register(
        self, serial: str, sold_on: date, *, product_line: str = "tractor", dealer_id: str | None = "D1"
    ) -> httpx.Response:
        body = {
            "serial": serial,
            "model": "T-100",
            "product_line": product_line,
            "sold_on": sold_on.isoformat(),
            "dealer_id": dealer_id,
        }
        return await self.client.post("/v1/products", json=body, headers=self.officer)

    async def set_policy(self, product_line: str = "tractor", months: int = 24, **fields) -> httpx.Response:
        body = {"product_line": product_line, "months": months, **fields}
        return await self.client.post("/v1/warranty-policies", json=body, headers=self.officer)

    async def history(self, serial: str, headers: dict | None = None) -> httpx.Response:
        return await self.client.get(f"/v1/units/{serial}/history?limit=500", headers=headers or self.officer)

    async def wait_for_history(self, serial: str, predicate, headers: dict | None = None) -> list[dict]:
        async def entries() -> list[dict]:
            response = await self.history(serial, headers)
            return response.json()["items"] if response.status_code == 200 else []

        return await eventually(entries, until=predicate)

    async def swap(
        self,
        job: Job,
        *,
        category: str = "pump",
        unit_cost: str = "120.00",
        quantity: int = 1,
        headers: dict | None = None,
        **fields,
    ) -> httpx.Response:
        body = {
            "job_id": job.job_id,
            "request_id": job.request_id,
            "serial": job.serial,
            "part_number": f"P-{category}",
            "part_category": category,
            "quantity": quantity,
            "unit_cost": unit_cost,
            **fields,
        }
        return await self.client.post("/v1/part-swaps", json=body, headers=headers or self.dealer(job.dealer_id))


@dataclass
class Job:
    serial: str
    request_id: str
    job_id: str
    dealer_id: str | None


def received(
    serial: str,
    *,
    request_id: str | None = None,
    dealer_id: str | None = "D1",
    purchase_date: date | None = None,
    product_line: str = "tractor",
) -> ServiceRequestReceived:
    return ServiceRequestReceived(
        request_id=request_id or str(uuid.uuid4()),
        dealer_id=dealer_id,
        channel=Channel.dealer,
        customer=Customer(name="Ann Farmer", phone="+49 170 5550101", region="north"),
        product=Product(serial=serial, model="T-100", product_line=product_line),
        purchase_date=purchase_date,
        symptom="Engine stalls when cold",
        customer_tier=CustomerTier.standard,
        urgent=False,
    )


async def open_job(
    warranty: Warranty,
    serial: str,
    *,
    dealer_id: str | None = "D1",
    technician_id: str = "T1",
    at: datetime | None = None,
    purchase_date: date | None = None,
) -> Job:
    """Play intake and dispatch: a request for `serial`, a job for it assigned to `technician_id`; wait until
    warranty knows the job."""
    at = at or warranty.clock.now() - timedelta(hours=2)
    request = received(serial, dealer_id=dealer_id, purchase_date=purchase_date)
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    await publish(warranty.kafka, envelope_for(request, source="intake", time=at))
    await publish(
        warranty.kafka,
        envelope_for(
            JobCreated(
                job_id=job_id,
                request_id=request.request_id,
                mode=ServiceMode.onsite,
                priority=Priority.P3,
                region="north",
                product_line="tractor",
                dealer_id=dealer_id,
            ),
            source="dispatch",
            time=at + timedelta(minutes=5),
        ),
        envelope_for(
            JobAssigned(
                job_id=job_id,
                request_id=request.request_id,
                center_id="C1",
                technician_id=technician_id,
                by=AssignedBy.auto,
            ),
            source="dispatch",
            time=at + timedelta(minutes=6),
        ),
    )
    await warranty.wait_for_history(
        serial, lambda items: any(i["type"] == "job.assigned" and i["job_id"] == job_id for i in items)
    )
    return Job(serial, request.request_id, job_id, dealer_id)


async def complete_job(
    warranty: Warranty, job: Job, *, at: datetime, fixed: bool = True, technician_id: str = "T1"
) -> None:
    completed = JobCompleted(
        job_id=job.job_id,
        request_id=job.request_id,
        technician_id=technician_id,
        fixed=fixed,
        resolution="replaced" if fixed else "part on order",
    )
    envelope = envelope_for(completed, source="dispatch", time=at)
    await publish(warranty.kafka, envelope)
    # The history row of this very event (its time) tells that warranty has taken the completion in.
    stamp = at.isoformat().replace("+00:00", "Z")
    await warranty.wait_for_history(
        job.serial,
        lambda items: any(
            i["type"] == "job.completed" and i["job_id"] == job.job_id and i["time"].startswith(stamp[:19])
            for i in items
        ),
    )


def serial() -> str:
    return f"SN-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def warranty_running(tmp_path, event_bus: str, **overrides) -> AsyncIterator[Warranty]:
    """A warranty app (settings: `warranty_settings` with `overrides`) on a test clock at a whole second."""
    clock = FixedClock(utcnow().replace(microsecond=0))
    settings = await warranty_settings(tmp_path, event_bus, **overrides)
    app = create_app(settings, clock=clock, configure_logs=False)
    async with running(app) as client:
        yield Warranty(client, settings, app, clock, event_bus)


@pytest.fixture
async def warranty(tmp_path, event_bus):
    async with warranty_running(tmp_path, event_bus) as warranty:
        yield warranty


@pytest.fixture
async def warranty_on_postgres(postgres_server, tmp_path, event_bus):
    """Warranty on a database of its own on the PostgreSQL server."""
    url = await create_database(postgres_server, f"warranty_{uuid.uuid4().hex[:8]}")
    async with warranty_running(tmp_path, event_bus, database_url=url) as warranty:
        yield warranty
