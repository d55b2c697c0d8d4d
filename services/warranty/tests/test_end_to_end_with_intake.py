"""End to end through Kafka with the other services' real apps in-process: a request opened at intake is judged
by warranty and intake shows the coverage; the job (played as dispatch publishes it, or by dispatch's own app
when it is there) is repaired, claimed, and the unit's history holds what the other services published."""

from datetime import date, timedelta

import pytest

from services.intake.app import create_app as create_intake
from services.intake.tests.conftest import intake_settings, new_request_body
from services.warranty.tests.conftest import Job, complete_job, group_at_end, serial
from shared.contracts.dispatch import AssignedBy, JobAssigned, JobCreated
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.topics import DISPATCH, INTAKE, WARRANTY
from shared.testing.app import bearer, eventually, running
from shared.testing.kafka import envelope_for, publish


@pytest.fixture(scope="session")
def event_bus(kafka_bootstrap):
    """These end-to-end tests stay on real Kafka (the `warranty` fixture takes its broker from here)."""
    return kafka_bootstrap


@pytest.fixture
async def intake(tmp_path, kafka_bootstrap):
    group = await group_at_end(kafka_bootstrap, [WARRANTY, DISPATCH], "intake-e2e")
    settings = intake_settings(tmp_path, kafka_bootstrap, consumer_group=group)
    async with running(create_intake(settings, configure_logs=False)) as client:
        client.headers.update(bearer(settings, "agent"))
        yield client


async def coverage_shown(intake, request_id: str) -> dict:
    async def view():
        return (await intake.get(f"/v1/service-requests/{request_id}")).json()

    return (await eventually(view, until=lambda v: v["coverage"] is not None))["coverage"]


async def covered_request_with_its_job(intake, dispatch_client, sn: str, dealer_id: str) -> tuple[str, str]:
    """A request for the registered unit `sn` opened at intake, shown covered, triaged on site; once dispatch has
    made its job: (request id, job id)."""
    body = new_request_body(sn, dealer_id=dealer_id)
    request_id = (await intake.post("/v1/service-requests", json=body)).json()["id"]
    assert (await coverage_shown(intake, request_id))["covered"] is True
    await intake.post(f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"})
    jobs = await eventually(
        lambda: dispatch_client.get(f"/v1/jobs?request_id={request_id}"),
        until=lambda r: len(r.json()["items"]) == 1,
        timeout=30,
    )
    return request_id, jobs.json()["items"][0]["id"]


async def test_a_request_opened_at_intake_shows_warrantys_coverage_and_its_repair_is_claimed(warranty, intake):
    line = f"line-{serial()}"
    await warranty.set_policy(line, 24)
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=100), product_line=line, dealer_id="D1")
    expected_end = (await warranty.client.get(f"/v1/coverage?serial={sn}", headers=warranty.officer)).json()

    body = new_request_body(
        sn, dealer_id="D1", purchase_date="2020-01-01", product={"serial": sn, "model": "T-100", "product_line": line}
    )
    request_id = (await intake.post("/v1/service-requests", json=body)).json()["id"]
    coverage = await coverage_shown(intake, request_id)
    assert (coverage["covered"], coverage["expires_on"]) == (True, expected_end["expires_on"])
    assert "24-month warranty" in coverage["reason"] and "registered sale" in coverage["reason"]

    assert (await intake.post(f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"})).status_code == 200
    job = Job(sn, request_id, f"job-{request_id[:8]}", "D1")
    warranty.catch_up_with_real_time()  # so that dispatch's steps come after intake's request
    at = warranty.clock.now()
    await publish(
        warranty.kafka,
        envelope_for(
            JobCreated(
                job_id=job.job_id,
                request_id=request_id,
                mode=ServiceMode.onsite,
                priority=Priority.P3,
                region="north",
                product_line=line,
                dealer_id="D1",
            ),
            source="dispatch",
            time=at,
        ),
        envelope_for(
            JobAssigned(
                job_id=job.job_id, request_id=request_id, center_id="C1", technician_id="T1", by=AssignedBy.auto
            ),
            source="dispatch",
            time=at,
        ),
    )
    await warranty.wait_for_history(sn, lambda items: any(i["type"] == "job.assigned" for i in items))
    swap = await warranty.swap(
        job, category="gearbox", unit_cost="310.00", headers=warranty.auth("technician", sub="T1")
    )
    assert swap.status_code == 201 and swap.json()["covered"] is True
    await complete_job(warranty, job, at=at + timedelta(minutes=1))
    resolved = await eventually(
        lambda: intake.get(f"/v1/service-requests/{request_id}"), until=lambda r: r.json()["status"] == "resolved"
    )
    assert resolved.json()["coverage"]["covered"] is True

    claim = await warranty.client.post(
        "/v1/claims",
        json={"job_id": job.job_id, "labour_minutes": 45, "swap_ids": [swap.json()["id"]]},
        headers=warranty.dealer("D1"),
    )
    assert claim.json()["status"] == "approved" and claim.json()["amounts"]["total"] == "355.00"
    history = await warranty.wait_for_history(
        sn, lambda items: any(i["type"] == "service_request.resolved" for i in items)
    )
    from_intake = [i["type"] for i in history if i["source"] == "intake"]
    assert from_intake == ["service_request.received", "service_request.triaged", "service_request.resolved"]


async def test_intake_shows_coverage_from_the_purchase_date_for_a_serial_warranty_does_not_know(warranty, intake):
    sn = serial()
    old = date(2019, 5, 1)
    body = new_request_body(sn, purchase_date=old.isoformat())
    request_id = (await intake.post("/v1/service-requests", json=body)).json()["id"]
    coverage = await coverage_shown(intake, request_id)
    assert coverage["covered"] is False and coverage["expires_on"] == "2020-04-30"
    assert f"purchase date 2019-05-01 given on the request (serial {sn} is not registered)" in coverage["reason"]


@pytest.fixture
async def dispatch(tmp_path, kafka_bootstrap):
    dispatch_app = pytest.importorskip("services.dispatch.app")
    group = await group_at_end(kafka_bootstrap, [INTAKE], "dispatch-e2e")
    settings = dispatch_app.DispatchSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/dispatch.db",
        kafka_bootstrap=kafka_bootstrap,
        consumer_group=group,
        relay_poll_interval_ms=50,
        log_json=False,
    )
    async with running(dispatch_app.create_app(settings, configure_logs=False)) as client:
        client.headers.update(bearer(settings, "dispatcher"))
        assert (
            await client.post(
                "/v1/service-centers", json={"id": "C-N", "name": "North", "region": "north", "kind": "repair_center"}
            )
        ).status_code == 201
        assert (
            await client.post(
                "/v1/technicians",
                json={"id": "T-7", "center_id": "C-N", "name": "Tess", "skills": ["tractor"], "active": True},
            )
        ).status_code == 201
        yield client, settings


async def test_a_repair_through_intake_dispatch_and_warranty_is_covered_claimed_and_on_the_units_history(
    warranty, intake, dispatch
):
    dispatch_client, dispatch_settings = dispatch
    warranty.catch_up_with_real_time()
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=60), dealer_id="D1")
    request_id, job_id = await covered_request_with_its_job(intake, dispatch_client, sn, "D1")
    technician = bearer(dispatch_settings, "technician", sub="T-7")
    for step in ("accept", "arrive"):
        assert (await dispatch_client.post(f"/v1/jobs/{job_id}/{step}", headers=technician)).status_code == 200
    await warranty.wait_for_history(sn, lambda items: any(i["type"] == "job.arrived" for i in items))
    swap = await warranty.swap(
        Job(sn, request_id, job_id, "D1"),
        category="hydraulics",
        unit_cost="80.00",
        headers=warranty.auth("technician", sub="T-7"),
        old_part_serial="H-1",
        new_part_serial="H-2",
    )
    assert swap.status_code == 201 and swap.json()["covered"] is True
    completed = await dispatch_client.post(
        f"/v1/jobs/{job_id}/complete", headers=technician, json={"fixed": True, "resolution": "new hydraulic pump"}
    )
    assert completed.status_code == 200
    await warranty.wait_for_history(sn, lambda items: any(i["type"] == "unit.repair_recorded" for i in items))

    claim = (
        await warranty.client.post(
            "/v1/claims",
            json={"job_id": job_id, "labour_minutes": 30, "swap_ids": [swap.json()["id"]]},
            headers=warranty.dealer("D1"),
        )
    ).json()
    assert (claim["status"], claim["amounts"]["total"]) == ("approved", "110.00")
    history = (await warranty.history(sn)).json()["items"]
    assert {"job.created", "job.assigned", "job.accepted", "job.arrived", "job.completed"} <= {
        i["type"] for i in history if i["source"] == "dispatch"
    }
