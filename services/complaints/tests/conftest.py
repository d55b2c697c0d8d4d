"""A complaints service per test: its own SQLite file and consumer group, the session's broker (`event_bus`: in-process, unless a module points it at real Kafka).
Requests and jobs become known to it the way they do in production: through events on Kafka."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from services.complaints.app import ComplaintsSettings, create_app
from services.complaints.reactions import CONSUMES
from services.complaints.read_model import known_jobs, known_requests, metadata
from shared.clock import Clock
from shared.contracts.dispatch import RevisitDone
from shared.contracts.enums import Channel, CustomerTier
from shared.contracts.intake import Customer, Product, ServiceRequestReceived
from shared.contracts.topics import DISPATCH, INTAKE
from shared.eventstore.tables import events
from shared.testing.app import bearer, eventually, running
from shared.testing.contract_events import job_created
from shared.testing.database import settings_for_a_test
from shared.testing.kafka import envelope_for, group_at_end, publish, start_group_at_end_now


@dataclass
class Complaints:
    client: httpx.AsyncClient
    settings: ComplaintsSettings
    app: object

    def auth(self, *roles: str, dealer_id: str | None = None, sub: str | None = None) -> dict[str, str]:
        return bearer(self.settings, *roles, dealer_id=dealer_id, sub=sub)

    @property
    def officer(self) -> dict[str, str]:
        return self.auth("complaints_officer")

    @property
    def agent(self) -> dict[str, str]:
        return self.auth("agent")

    async def open(self, headers: dict | None = None, **fields) -> httpx.Response:
        body = {
            "channel": "hotline",
            "category": "delay",
            "severity": "general",
            "description": "The technician never came",
        }
        body.update(fields)
        return await self.client.post("/v1/complaints", json=body, headers=headers or self.agent)

    async def act(
        self, complaint_id: str, action: str, body: dict | None = None, headers: dict | None = None
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/complaints/{complaint_id}/{action}", json=body, headers=headers or self.officer
        )

    async def get(self, complaint_id: str, headers: dict | None = None) -> httpx.Response:
        return await self.client.get(f"/v1/complaints/{complaint_id}", headers=headers or self.officer)

    async def view(self, complaint_id: str) -> dict:
        return (await self.get(complaint_id)).json()

    async def until(self, complaint_id: str, predicate, timeout: float = 20.0) -> dict:
        async def probe():
            response = await self.get(complaint_id)
            return response.json() if response.status_code == 200 else {}

        return await eventually(probe, until=lambda v: bool(v) and predicate(v), timeout=timeout)

    async def stored_types(self, stream_id: str) -> list[str]:
        async with self.app.state.runtime.db.read() as conn:
            rows = await conn.execute(
                select(events.c.type).where(events.c.stream_id == stream_id).order_by(events.c.version)
            )
            return [r.type for r in rows]

    async def knows(self, *, request_id: str | None = None, job_id: str | None = None) -> None:
        """Wait until complaints has learned the request and/or job from Kafka."""

        async def probe():
            async with self.app.state.runtime.db.read() as conn:
                found = []
                if request_id:
                    found.append(
                        (
                            await conn.execute(
                                select(known_requests.c.request_id).where(known_requests.c.request_id == request_id)
                            )
                        ).first()
                    )
                if job_id:
                    found.append(
                        (await conn.execute(select(known_jobs.c.job_id).where(known_jobs.c.job_id == job_id))).first()
                    )
                return all(found)

        await eventually(probe, until=bool)


def complaints_settings(tmp_path, event_bus: str, **overrides) -> ComplaintsSettings:
    group = f"complaints-test-{uuid.uuid4().hex[:8]}"
    settings = settings_for_a_test(
        ComplaintsSettings,
        metadata,
        f"{tmp_path}/complaints.db",
        event_bus,
        **{"consumer_group": group, "deadline_poll_interval_ms": 50, **overrides},
    )
    if "consumer_group" not in overrides:
        # A fresh group reads only what comes next, not every earlier test's events (their backlog grows with
        # the suite; the restart tests publish after their first start, and a restart keeps its offsets).
        start_group_at_end_now(event_bus, settings.consumer_group, CONSUMES, keep_committed=True)
    return settings


def start(tmp_path, event_bus, clock: Clock | None = None, **overrides):
    settings = complaints_settings(tmp_path, event_bus, **overrides)
    app = create_app(settings, clock=clock, configure_logs=False)
    return settings, app


@pytest.fixture
async def complaints(tmp_path, event_bus):
    # The group starts at the end of the topics: earlier tests' revisits must not open complaints meanwhile.
    group = await group_at_end(event_bus, [INTAKE, DISPATCH], "complaints-test")
    settings, app = start(tmp_path, event_bus, consumer_group=group)
    async with running(app) as client:
        yield Complaints(client, settings, app)


# --- other services' facts, as they publish them -----------------------------------------------------------


def request_received(request_id: str, dealer_id: str | None) -> ServiceRequestReceived:
    return ServiceRequestReceived(
        request_id=request_id,
        dealer_id=dealer_id,
        channel=Channel.dealer if dealer_id else Channel.hotline,
        customer=Customer(name="Ann Farmer", phone="+49 170 5550101", region="north"),
        product=Product(serial=f"SN-{request_id[:8]}", model="T-100", product_line="tractor"),
        purchase_date=None,
        symptom="Engine stalls when cold",
        customer_tier=CustomerTier.standard,
        urgent=False,
    )


def revisit_done(job_id: str, request_id: str, satisfaction: int, comment: str | None = None) -> RevisitDone:
    return RevisitDone(
        job_id=job_id, request_id=request_id, satisfaction=satisfaction, nps=None, channel="phone", comment=comment
    )


async def known_case(
    service: Complaints, event_bus: str, dealer_id: str | None = None, with_job: bool = True
) -> tuple[str, str | None]:
    """A request (and job) that intake (and dispatch) published; returns once complaints knows them."""
    request_id, job_id = str(uuid.uuid4()), (f"job-{uuid.uuid4()}" if with_job else None)
    facts = [envelope_for(request_received(request_id, dealer_id), source="intake")]
    if job_id:
        facts.append(envelope_for(job_created(job_id, request_id, dealer_id), source="dispatch"))
    await publish(event_bus, *facts)
    await service.knows(request_id=request_id, job_id=job_id)
    return request_id, job_id


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
