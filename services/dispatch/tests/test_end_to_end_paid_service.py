"""Paid service end to end across intake and dispatch, each its own app, database and consumer group, talking
only through the session's broker (`event_bus`) (warranty's verdict and catalogue played as warranty publishes
them): an out-of-warranty request triaged onsite waits for a quote; accepted, it gets its job with the arrive
SLA counted from the acceptance; declined or expired, it closes with that outcome and never gets a job."""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from services.dispatch.app import create_app as create_dispatch
from services.dispatch.tests.conftest import Dispatch, dispatch_settings, start_group_at_end
from services.dispatch.tests.test_end_to_end import Services
from services.intake.app import create_app as create_intake
from services.intake.reactions import CONSUMES as INTAKE_CONSUMES
from services.intake.tests.conftest import Intake, intake_settings
from shared.clock import FixedClock
from shared.contracts.topics import INTAKE
from shared.contracts.warranty import PartRegistered, WarrantyChecked
from shared.eventstore.tables import processed_events
from shared.testing.app import all_published, eventually, running
from shared.testing.kafka import caught_up, collect, envelope_for, headers_of, publish, subject_is

P3_ARRIVE = timedelta(minutes=4320)


@asynccontextmanager
async def paid_service(
    tmp_path, event_bus, clock: FixedClock | None = None, **intake_overrides
) -> AsyncIterator[Services]:
    """Intake (on `clock`, the system clock by default) and dispatch, with a technician dispatch may send."""
    intake_config = intake_settings(tmp_path, event_bus, deadline_poll_interval_ms=50, **intake_overrides)
    dispatch_config = dispatch_settings(tmp_path, event_bus)
    await start_group_at_end(event_bus, intake_config.consumer_group, list(INTAKE_CONSUMES))
    await start_group_at_end(event_bus, dispatch_config.consumer_group, [INTAKE])
    intake_app = create_intake(intake_config, clock=clock, configure_logs=False)
    dispatch_app = create_dispatch(dispatch_config, configure_logs=False)
    async with running(intake_app) as intake_client, running(dispatch_app) as dispatch_client:
        both = Services(
            Intake(intake_client, intake_config, intake_app, clock),
            Dispatch(dispatch_client, dispatch_config, dispatch_app),
        )
        assert (await both.dispatch.center("C-N", region="north")).status_code == 201
        assert (await both.dispatch.technician_in("T-7", "C-N", skills=["tractor"])).status_code == 201
        part_number = f"SEAL-{uuid.uuid4().hex[:6]}"
        await publish(
            event_bus,
            envelope_for(
                PartRegistered(
                    part_number=part_number,
                    name="Gearbox seal",
                    category="gearbox",
                    unit_price=Decimal("12.35"),
                    currency="EUR",
                    registered_by="user:officer",
                ),
                source="warranty",
            ),
        )
        both.part_number = part_number  # type: ignore[attr-defined]
        yield both


async def out_of_warranty_triaged_onsite(services: Services, event_bus: str) -> str:
    """An out-of-warranty request of dealer D1, triaged onsite: it awaits a quote, and dispatch, having seen the
    triage, made no job."""
    intake = services.intake
    created = await intake.open(
        serial=f"SN-PAID-{uuid.uuid4().hex[:6]}", headers=intake.auth("dealer", dealer_id="D1"), channel="dealer"
    )
    request_id = created.json()["id"]
    verdict = WarrantyChecked(
        request_id=request_id,
        serial=created.json()["product"]["serial"],
        covered=False,
        expires_on="2025-02-28",
        reason="not covered: the 12-month warranty ended on 2025-02-28",
    )
    await publish(event_bus, envelope_for(verdict, source="warranty"))
    await services.request_status(request_id, lambda v: v["coverage"] is not None)
    triaged = await intake.client.post(
        f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"}, headers=intake.agent
    )
    assert triaged.status_code == 200 and triaged.json()["status"] == "awaiting_quote", triaged.text

    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=4)
    triage_id = next(headers_of(r)["ce_id"] for r in records if headers_of(r)["ce_type"] == "service_request.triaged")
    await eventually(lambda: processed_by(services.dispatch, triage_id), until=bool, timeout=30)
    assert await jobs_of(services.dispatch, request_id) == [], "no job while the customer has not agreed to pay"
    return request_id


async def quoted(services: Services, request_id: str) -> dict:
    body = {"labour_minutes": 60, "parts": [{"part_number": services.part_number, "quantity": 2}]}  # type: ignore[attr-defined]
    ready = await eventually(
        lambda: services.intake.client.post(
            f"/v1/service-requests/{request_id}/quote", json=body, headers=services.intake.agent
        ),
        until=lambda r: r.status_code != 422,  # the catalogue's registration may still be on its way
        timeout=30,
    )
    assert ready.status_code == 200, ready.text
    return ready.json()["quote"]


async def published_to_dispatch(services: Services, event_bus: str, request_id: str, *, expected: int) -> list:
    """The request's records once intake has published everything and dispatch has read it all (what dispatch
    does with them, a job or none, is then done)."""
    await all_published(services.intake.app)
    await caught_up(services.dispatch.app)
    return await collect(event_bus, INTAKE, subject_is(request_id), expected=expected)


async def processed_by(dispatch: Dispatch, event_id: str) -> bool:
    async with dispatch.app.state.runtime.db.read() as conn:
        found = await conn.execute(select(processed_events.c.event_id).where(processed_events.c.event_id == event_id))
        return found.first() is not None


async def jobs_of(dispatch: Dispatch, request_id: str) -> list:
    return (await dispatch.get_json(f"/v1/jobs?request_id={request_id}"))["items"]


async def test_an_out_of_warranty_request_quoted_and_accepted_gets_its_job_with_the_arrive_sla_from_the_acceptance(
    tmp_path, event_bus
):
    async with paid_service(tmp_path, event_bus) as services:
        request_id = await out_of_warranty_triaged_onsite(services, event_bus)
        quote = await quoted(services, request_id)
        assert quote["total"] == "84.70"  # 60 min at 60.00/h + 2 × 12.35

        accepted = await services.intake.client.post(
            f"/v1/service-requests/{request_id}/quote/accept",
            json={"channel": "dealer", "quote_id": quote["quote_id"]},
            headers=services.intake.auth("dealer", dealer_id="D1"),
        )
        assert accepted.status_code == 200, accepted.text
        accepted_at = datetime.fromisoformat(accepted.json()["quote"]["decided_at"])

        job = await services.dispatch.job_of(request_id, timeout=30)
        assert (job["status"], job["technician_id"]) == ("assigned", "T-7")
        assert datetime.fromisoformat(job["created_at"]) == accepted_at
        assert datetime.fromisoformat(job["arrive_due"]) == accepted_at + P3_ARRIVE, "from the acceptance"
        received_at = datetime.fromisoformat(accepted.json()["received_at"])
        assert datetime.fromisoformat(job["arrive_due"]) != received_at + P3_ARRIVE

        view = await services.request_status(request_id, lambda v: v["status"] == "dispatched")
        assert view["job_id"] == job["id"]
        assert [h["type"] for h in view["history"]] == [
            "service_request.received",
            "service_request.coverage_recorded",
            "service_request.triaged",
            "service_request.quote_required",
            "service_request.quote_issued",
            "service_request.quote_accepted",
            "service_request.cleared_for_dispatch",
            "service_request.dispatched",
        ]


async def test_a_declined_quote_closes_the_request_with_its_outcome_and_no_job(tmp_path, event_bus):
    async with paid_service(tmp_path, event_bus) as services:
        request_id = await out_of_warranty_triaged_onsite(services, event_bus)
        await quoted(services, request_id)
        declined = await services.intake.client.post(
            f"/v1/service-requests/{request_id}/quote/decline",
            json={"reason": "the customer buys a new one"},
            headers=services.intake.auth("dealer", dealer_id="D1"),
        )
        assert declined.status_code == 200 and declined.json()["status"] == "closed"
        records = await published_to_dispatch(services, event_bus, request_id, expected=7)
        assert [headers_of(r)["ce_type"] for r in records][-2:] == [
            "service_request.quote_declined",
            "service_request.closed",
        ]
        assert json.loads(records[-1].value) == {"request_id": request_id, "outcome": "quote_declined"}
        assert await jobs_of(services.dispatch, request_id) == []


async def test_an_expired_quote_closes_the_request_with_its_outcome_and_no_job(tmp_path, event_bus):
    clock = FixedClock(datetime.now(UTC))
    async with paid_service(tmp_path, event_bus, clock) as services:
        request_id = await out_of_warranty_triaged_onsite(services, event_bus)
        quote = await quoted(services, request_id)
        clock.advance_to(datetime.fromisoformat(quote["valid_until"]))
        closed = await services.request_status(request_id, lambda v: v["status"] == "closed")
        assert closed["quote"]["state"] == "expired" and closed["quote"]["decided_at"] == quote["valid_until"]
        records = await published_to_dispatch(services, event_bus, request_id, expected=7)
        assert [headers_of(r)["ce_type"] for r in records][-2:] == [
            "service_request.quote_expired",
            "service_request.closed",
        ]
        assert json.loads(records[-1].value) == {"request_id": request_id, "outcome": "quote_expired"}
        assert await jobs_of(services.dispatch, request_id) == []


async def test_an_acceptance_synced_after_the_expiry_withdraws_it_and_dispatch_creates_the_job_from_the_acceptance(
    tmp_path, kafka_bootstrap
):
    async with paid_service(tmp_path, kafka_bootstrap, quote_valid_days=3 / 86_400) as services:
        request_id = await out_of_warranty_triaged_onsite(services, kafka_bootstrap)
        quote = await quoted(services, request_id)
        await services.request_status(request_id, lambda v: v["status"] == "closed")
        assert await jobs_of(services.dispatch, request_id) == [], "expired: no job"

        # The dealer's tablet recorded the customer's yes a second after the quote, and syncs only now.
        accepted_at = datetime.fromisoformat(quote["issued_at"]) + timedelta(seconds=1)
        accepted = await services.intake.client.post(
            f"/v1/service-requests/{request_id}/quote/accept",
            json={"channel": "dealer", "quote_id": quote["quote_id"], "occurred_at": accepted_at.isoformat()},
            headers=services.intake.auth("dealer", dealer_id="D1"),
        )
        assert accepted.status_code == 200, accepted.text

        job = await services.dispatch.job_of(request_id, timeout=30)
        assert (job["status"], job["technician_id"]) == ("assigned", "T-7")
        assert datetime.fromisoformat(job["created_at"]) == accepted_at
        assert datetime.fromisoformat(job["arrive_due"]) == accepted_at + P3_ARRIVE, "from the acceptance"
        view = await services.request_status(request_id, lambda v: v["status"] == "dispatched")
        assert view["job_id"] == job["id"]
        assert [h["type"] for h in view["history"]][4:] == [
            "service_request.quote_issued",
            "service_request.quote_expired",
            "service_request.closed",
            "service_request.quote_expiry_withdrawn",
            "service_request.quote_accepted",
            "service_request.cleared_for_dispatch",
            "service_request.dispatched",
        ]
