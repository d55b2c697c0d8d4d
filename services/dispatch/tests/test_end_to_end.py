"""End to end across intake and dispatch, each its own app, database and consumer group, talking only through
the session's real Kafka broker: a repair from the first call to the revisit, and a cancellation."""

import uuid
from dataclasses import dataclass

import pytest

from services.dispatch.app import create_app as create_dispatch
from services.dispatch.tests.conftest import Dispatch, dispatch_settings, start_group_at_end
from services.intake.app import create_app as create_intake
from services.intake.reactions import CONSUMES as INTAKE_CONSUMES
from services.intake.tests.conftest import Intake, intake_settings
from shared.contracts.topics import DISPATCH, INTAKE
from shared.contracts.warranty import WarrantyChecked
from shared.testing.app import eventually, running
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is


@dataclass
class Services:
    intake: Intake
    dispatch: Dispatch

    async def request_status(self, request_id: str, until) -> dict:
        """intake's view of the request, once `until(view)` holds."""

        async def view() -> dict:
            return (
                await self.intake.client.get(f"/v1/service-requests/{request_id}", headers=self.intake.agent)
            ).json()

        return await eventually(view, until=until, timeout=30)

    async def open_covered(self, kafka_bootstrap: str) -> str:
        """A request whose unit warranty covers (its verdict played as warranty publishes it): intake
        dispatches field work only once the verdict is in (design.md, Paid service)."""
        created = await self.intake.open(serial=f"SN-E2E-{uuid.uuid4().hex[:6]}")
        assert created.status_code == 201
        request_id = created.json()["id"]
        verdict = WarrantyChecked(
            request_id=request_id, serial=created.json()["product"]["serial"], covered=True, reason="covered"
        )
        await publish(kafka_bootstrap, envelope_for(verdict, source="warranty"))
        await self.request_status(request_id, lambda v: v["coverage"] is not None)
        return request_id


@pytest.fixture
async def services(tmp_path, kafka_bootstrap):
    intake_config = intake_settings(tmp_path, kafka_bootstrap)
    dispatch_config = dispatch_settings(tmp_path, kafka_bootstrap)
    await start_group_at_end(kafka_bootstrap, intake_config.consumer_group, list(INTAKE_CONSUMES))
    await start_group_at_end(kafka_bootstrap, dispatch_config.consumer_group, [INTAKE])
    intake_app = create_intake(intake_config, configure_logs=False)
    dispatch_app = create_dispatch(dispatch_config, configure_logs=False)
    async with running(intake_app) as intake_client, running(dispatch_app) as dispatch_client:
        both = Services(
            Intake(intake_client, intake_config, intake_app), Dispatch(dispatch_client, dispatch_config, dispatch_app)
        )
        assert (await both.dispatch.center("C-N", region="north")).status_code == 201
        assert (await both.dispatch.technician_in("T-7", "C-N", skills=["tractor"])).status_code == 201
        yield both


async def test_a_repair_from_the_first_call_to_the_revisit_closes_the_request_in_intake(services, kafka_bootstrap):
    intake, dispatch = services.intake, services.dispatch
    request_id = await services.open_covered(kafka_bootstrap)
    triaged = await intake.client.post(
        f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"}, headers=intake.agent
    )
    assert triaged.status_code == 200

    job = await dispatch.job_of(request_id, timeout=30)
    assert (job["status"], job["technician_id"], job["center_id"]) == ("assigned", "T-7", "C-N")
    assert job["created_at"] == triaged.json()["history"][-1]["time"], "the job is stamped with the triage's time"
    view = await services.request_status(request_id, lambda v: v["status"] == "dispatched")
    assert view["job_id"] == job["id"]

    technician = dispatch.technician("T-7")
    for action, body, intake_status in [
        ("accept", {}, "dispatched"),
        ("arrive", {}, "in_service"),
        ("complete", {"fixed": False, "resolution": "pump on order"}, "in_service"),
        ("arrive", {}, "in_service"),
        ("complete", {"fixed": True, "resolution": "replaced the pump"}, "resolved"),
    ]:
        response = await dispatch.step(job["id"], action, technician, **body)
        assert response.status_code == 200, response.text
        await services.request_status(request_id, lambda v, s=intake_status: v["status"] == s)
    revisit = await dispatch.step(job["id"], "revisit", dispatch.auth("agent"), satisfaction=5, nps=10, channel="phone")
    assert revisit.status_code == 200

    closed = await services.request_status(request_id, lambda v: v["status"] == "closed")
    assert [h["type"] for h in closed["history"]] == [
        "service_request.received",
        "service_request.coverage_recorded",
        "service_request.triaged",
        "service_request.dispatched",
        "service_request.service_started",
        "service_request.resolved",
        "service_request.closed",
    ]
    records = await collect(kafka_bootstrap, DISPATCH, subject_is(job["id"]), expected=8)
    assert [headers_of(r)["ce_type"] for r in records] == [
        "job.created",
        "job.assigned",
        "job.accepted",
        "job.arrived",
        "job.completed",
        "job.arrived",
        "job.completed",
        "revisit.done",
    ]
    triage_chain = headers_of(records[0])["ce_correlationid"]
    intake_records = await collect(kafka_bootstrap, INTAKE, subject_is(request_id), expected=3)
    assert headers_of(intake_records[2])["ce_type"] == "service_request.triaged"
    assert triage_chain == headers_of(intake_records[2])["ce_correlationid"], "one chain from triage to job"


async def test_a_request_cancelled_in_intake_cancels_its_job_in_dispatch(services, kafka_bootstrap):
    intake, dispatch = services.intake, services.dispatch
    request_id = await services.open_covered(kafka_bootstrap)
    await intake.client.post(
        f"/v1/service-requests/{request_id}/triage", json={"mode": "carry_in"}, headers=intake.agent
    )
    job = await dispatch.job_of(request_id, timeout=30)
    await services.request_status(request_id, lambda v: v["status"] == "dispatched")
    cancelled = await intake.client.post(
        f"/v1/service-requests/{request_id}/cancel", json={"reason": "unit sold"}, headers=intake.agent
    )
    assert cancelled.status_code == 200
    view = await eventually(
        lambda: dispatch.get_json(f"/v1/jobs/{job['id']}"), until=lambda j: j["status"] == "cancelled", timeout=30
    )
    assert view["cancel_reason"] == "unit sold"
    assert (await dispatch.get_json("/v1/technicians/T-7/queue"))["items"] == []
