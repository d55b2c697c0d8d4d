"""Jobs over HTTP (design.md, dispatch :8002): the field steps, who may take them, and bad input refused with a
problem document and nothing half-written. Jobs come from triaged requests on the real `intake.events`."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.dispatch.tests.conftest import BACKENDS, assigned_job, triaged_request
from shared.contracts.enums import Priority
from shared.contracts.topics import DISPATCH
from shared.eventstore.tables import events, outbox
from shared.testing.app import eventually
from shared.testing.kafka import collect


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def nothing_written(dispatch, job: dict):
    """The job's stream and the outbox are as they were before a refused command."""
    async with dispatch.app.state.runtime.db.read() as conn:
        stored = (
            await conn.execute(select(func.count()).select_from(events).where(events.c.stream_id == job["id"]))
        ).scalar_one()
        due = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    now = await dispatch.get_json(f"/v1/jobs/{job['id']}")
    return stored == job["version"] and now["version"] == job["version"] and now["status"] == job["status"] and due == 0


async def relay_drained(dispatch):
    await eventually(dispatch.app.state.runtime.relay.backlog, until=lambda n: n == 0)


def assert_problem(response, status: int, field: str | None = None, says: str | None = None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if field:
        assert problem["errors"][0]["field"] == field, problem
    if says:
        assert says in problem["detail"], problem


@pytest.mark.parametrize("dispatch", BACKENDS, indirect=True)
async def test_the_assigned_technician_takes_the_job_through_two_visits_and_an_agent_records_the_revisit(
    staffed, event_bus
):
    job = await assigned_job(staffed, event_bus)
    t1 = staffed.technician("T1")
    for action, body, status in [
        ("accept", {}, "accepted"),
        ("arrive", {}, "in_service"),
        ("complete", {"fixed": False, "resolution": "part on order"}, "repeat_visit_needed"),
        ("arrive", {}, "in_service"),
        ("complete", {"fixed": True, "resolution": "replaced pump"}, "completed"),
    ]:
        response = await staffed.step(job["id"], action, t1, **body)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    revisit = await staffed.step(
        job["id"], "revisit", staffed.auth("agent"), satisfaction=4, nps=9, channel="phone", comment="friendly"
    )
    assert revisit.status_code == 200
    view = revisit.json()
    assert view["status"] == "revisited"
    assert view["revisit"]["satisfaction"] == 4 and view["revisit"]["nps"] == 9
    assert [(v["fixed"], v["resolution"]) for v in view["visits"]] == [
        (False, "part on order"),
        (True, "replaced pump"),
    ]
    assert view["sla"]["accept"]["breached"] is False and view["sla"]["arrive"]["done_at"] == view["arrived_at"]
    assert await staffed.stream_types(job["id"]) == [
        "job.created",
        "job.assigned",
        "job.accepted",
        "job.arrived",
        "job.completed",
        "job.arrived",
        "job.completed",
        "revisit.done",
    ]


async def test_a_visit_that_did_not_fix_the_unit_publishes_why_in_job_completed(staffed, event_bus):
    job = await assigned_job(staffed, event_bus)
    t1 = staffed.technician("T1")
    for action, body in [
        ("accept", {}),
        ("arrive", {}),
        ("complete", {"fixed": False, "reason": "parts_unavailable", "resolution": "pump on order"}),
        ("arrive", {}),
        ("complete", {"fixed": False}),
        ("arrive", {}),
        ("complete", {"fixed": True}),
    ]:
        response = await staffed.step(job["id"], action, t1, **body)
        assert response.status_code == 200, response.text
    assert [v["reason"] for v in response.json()["visits"]] == ["parts_unavailable", "unspecified", None]
    published = await collect(
        event_bus,
        DISPATCH,
        expected=3,
        match=lambda r: dict(r.headers)["ce_type"] == b"job.completed" and json.loads(r.value)["job_id"] == job["id"],
    )
    assert [json.loads(r.value).get("reason") for r in published] == ["parts_unavailable", "unspecified", None]


async def test_assigning_an_unknown_unskilled_or_inactive_technician_is_refused_and_nothing_is_written(
    staffed, event_bus
):
    await staffed.technician_in("T-washer", "C1", skills=["washer"])
    await staffed.technician_in("T-off", "C1", active=False)
    job = await assigned_job(staffed, event_bus)
    await relay_drained(staffed)
    url = f"/v1/jobs/{job['id']}/assign"
    for technician_id, says in [
        ("T-404", "technician T-404 does not exist"),
        ("T-washer", "no skill for product line 'tractor'"),
        ("T-off", "inactive"),
    ]:
        response = await staffed.client.post(url, json={"technician_id": technician_id}, headers=staffed.dispatcher)
        assert_problem(response, 422, field="technician_id", says=says)
        assert await nothing_written(staffed, job)


async def test_assigning_a_completed_job_is_a_conflict(staffed, event_bus):
    await staffed.technician_in("T2", "C1")
    job = await assigned_job(staffed, event_bus)
    t1 = staffed.technician("T1")
    for action, body in [("accept", {}), ("arrive", {}), ("complete", {"fixed": True})]:
        job = (await staffed.step(job["id"], action, t1, **body)).json()
    await relay_drained(staffed)
    response = await staffed.client.post(
        f"/v1/jobs/{job['id']}/assign", json={"technician_id": "T2"}, headers=staffed.dispatcher
    )
    assert_problem(response, 409, says="the job is completed")
    assert response.json()["current_status"] == "completed"
    assert await nothing_written(staffed, job)


@pytest.mark.parametrize("dispatch", ["postgresql"], indirect=True)
async def test_bad_input_on_postgresql_is_refused_and_leaves_nothing_half_written(staffed, event_bus):
    await staffed.technician_in("T-washer", "C1", skills=["washer"])
    job = await assigned_job(staffed, event_bus)
    refused = await staffed.client.post(
        f"/v1/jobs/{job['id']}/assign", json={"technician_id": "T-washer"}, headers=staffed.dispatcher
    )
    assert_problem(refused, 422, field="technician_id")
    assert_problem(await staffed.step(job["id"], "arrive", staffed.technician("T1")), 409, says="accept it first")
    await relay_drained(staffed)
    assert await nothing_written(staffed, job)
    assert (await staffed.technician_in("T-x", "C-none")).status_code == 422


@pytest.mark.parametrize(
    "done, action, body, status, says",
    [
        ([], "arrive", {}, 409, "accept it first"),
        (["accept"], "complete", {"fixed": True}, 409, "arrive first"),
        (["accept", "arrive"], "complete", {"fixed": True, "reason": "customer_absent"}, 422, "reason"),
        (["accept", "arrive"], "complete", {"fixed": False, "reason": "the dog bit me"}, 422, "reason"),
        (["accept", "arrive", "unfixed"], "revisit", {"satisfaction": 5, "channel": "phone"}, 409, "not fixed yet"),
        (["accept", "arrive", "fixed"], "revisit", {"satisfaction": 6, "channel": "phone"}, 422, "satisfaction"),
        (["accept", "arrive", "fixed"], "revisit", {"satisfaction": 3, "nps": 11, "channel": "phone"}, 422, "nps"),
        (["accept", "arrive", "fixed"], "revisit", {"satisfaction": 0, "channel": "phone"}, 422, "satisfaction"),
    ],
)
async def test_steps_out_of_order_and_scores_out_of_range_are_refused(
    staffed, event_bus, done, action, body, status, says
):
    job = await assigned_job(staffed, event_bus)
    steps = {
        "accept": ("accept", {}),
        "arrive": ("arrive", {}),
        "unfixed": ("complete", {"fixed": False}),
        "fixed": ("complete", {"fixed": True}),
    }
    for step in done:
        name, step_body = steps[step]
        job = (await staffed.step(job["id"], name, staffed.technician("T1"), **step_body)).json()
    await relay_drained(staffed)
    headers = staffed.auth("agent") if action == "revisit" else staffed.technician("T1")
    response = await staffed.step(job["id"], action, headers, **body)
    assert_problem(response, status, field=says if status == 422 else None, says=says)
    assert await nothing_written(staffed, job)


async def test_a_technician_acts_only_on_their_own_jobs_and_sees_only_those(staffed, event_bus):
    await staffed.technician_in("T2", "C1")
    mine = await assigned_job(staffed, event_bus)
    t2 = staffed.technician("T2")
    refused = await staffed.step(mine["id"], "accept", t2)
    assert_problem(refused, 403, says="not assigned to technician T2")
    assert (await staffed.client.get(f"/v1/jobs/{mine['id']}", headers=t2)).status_code == 404
    assert (await staffed.get_json("/v1/jobs", t2))["items"] == []
    assert (await staffed.client.get("/v1/jobs?technician_id=T1", headers=t2)).status_code == 403
    assert (await staffed.client.get("/v1/technicians/T1/queue", headers=t2)).status_code == 403
    t1_list = await staffed.get_json("/v1/jobs", staffed.technician("T1"))
    assert [j["id"] for j in t1_list["items"]] == [mine["id"]]
    assert (
        await staffed.client.post(f"/v1/jobs/{mine['id']}/assign", json={"technician_id": "T2"}, headers=t2)
    ).status_code == 403, "technicians do not assign"


async def test_a_dealer_sees_the_jobs_of_its_own_requests_only(staffed, event_bus):
    mine = await assigned_job(staffed, event_bus, dealer_id="D1")
    theirs = await assigned_job(staffed, event_bus, dealer_id="D2")
    d1 = staffed.auth("dealer", dealer_id="D1")
    assert (await staffed.get_json(f"/v1/jobs/{mine['id']}", d1))["dealer_id"] == "D1"
    hidden = await staffed.client.get(f"/v1/jobs/{theirs['id']}", headers=d1)
    assert_problem(hidden, 404, says=theirs["id"])
    listed = await staffed.get_json("/v1/jobs?limit=500", d1)
    assert {j["dealer_id"] for j in listed["items"]} == {"D1"}
    assert (await staffed.client.get("/v1/jobs?dealer_id=D2", headers=d1)).status_code == 403
    revisit = await staffed.step(theirs["id"], "revisit", d1, satisfaction=5, channel="phone")
    assert revisit.status_code == 404
    assert (await staffed.step(mine["id"], "accept", d1)).status_code == 403, "dealers do not record field steps"


async def test_occurred_at_is_bounded_by_the_future_and_the_jobs_previous_step(staffed, event_bus):
    triaged_at = datetime.now(UTC) - timedelta(hours=1)
    job = await assigned_job(staffed, event_bus, triaged_at=triaged_at)
    t1 = staffed.technician("T1")
    future = await staffed.step(job["id"], "accept", t1, occurred_at=iso(datetime.now(UTC) + timedelta(hours=1)))
    assert_problem(future, 422, field="occurred_at", says="future")
    before = await staffed.step(job["id"], "accept", t1, occurred_at=iso(triaged_at - timedelta(minutes=1)))
    assert_problem(before, 422, field="occurred_at", says="previous step")
    synced = await staffed.step(job["id"], "accept", t1, occurred_at=iso(triaged_at + timedelta(minutes=5)))
    assert synced.status_code == 200 and synced.json()["accepted_at"] == iso(triaged_at + timedelta(minutes=5))
    naive = await staffed.step(job["id"], "arrive", t1, occurred_at="2026-01-01T10:00:00")
    assert_problem(naive, 422, field="occurred_at")


async def test_a_job_nobody_qualifies_for_waits_unassigned_until_a_dispatcher_assigns_anyone_skilled(
    staffed, event_bus
):
    await staffed.center("C-S", region="south")
    await staffed.technician_in("T-S", "C-S")
    job = await staffed.job_of(await triaged_request(event_bus, region="west", priority=Priority.P2))
    assert job["status"] == "unassigned" and job["technician_id"] is None and job["accept_due"] is None
    first = await staffed.client.post(
        f"/v1/jobs/{job['id']}/assign", json={"technician_id": "T-S"}, headers=staffed.dispatcher
    )
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["center_id"]) == ("assigned", "C-S"), "any region, when manual"
    again = await staffed.client.post(
        f"/v1/jobs/{job['id']}/assign", json={"technician_id": "T1"}, headers=staffed.dispatcher
    )
    assert again.json()["technician_id"] == "T1"
    assert again.json()["accept_due"] == first.json()["accept_due"], "a re-assignment does not restart the clock"
    await staffed.step(job["id"], "accept", staffed.technician("T1"))
    late = await staffed.client.post(
        f"/v1/jobs/{job['id']}/assign", json={"technician_id": "T-S"}, headers=staffed.dispatcher
    )
    assert_problem(late, 409, says="until the job is accepted")


async def test_a_technicians_queue_lists_open_jobs_by_priority_then_due_time(staffed, event_bus):
    now = datetime.now(UTC)
    p3 = await assigned_job(staffed, event_bus, priority=Priority.P3)
    p1_later = await assigned_job(staffed, event_bus, priority=Priority.P1, triaged_at=now - timedelta(minutes=1))
    p1_sooner = await assigned_job(staffed, event_bus, priority=Priority.P1, triaged_at=now - timedelta(minutes=9))
    done = await assigned_job(staffed, event_bus, priority=Priority.P1)
    t1 = staffed.technician("T1")
    for action, body in [("accept", {}), ("arrive", {}), ("complete", {"fixed": True})]:
        await staffed.step(done["id"], action, t1, **body)
    first = await staffed.get_json("/v1/technicians/T1/queue?limit=2", t1)
    rest = await staffed.get_json(f"/v1/technicians/T1/queue?limit=2&cursor={first['next_cursor']}", t1)
    assert [j["id"] for j in first["items"] + rest["items"]] == [p1_sooner["id"], p1_later["id"], p3["id"]]
    assert rest["next_cursor"] is None
    assert (await staffed.get_json("/v1/technicians/T1/queue"))["items"][0]["id"] == p1_sooner["id"]


async def test_jobs_list_filters_by_status_and_pages_newest_first(staffed, event_bus):
    jobs = [await assigned_job(staffed, event_bus) for _ in range(3)]
    await staffed.step(jobs[0]["id"], "accept", staffed.technician("T1"))
    accepted = await staffed.get_json("/v1/jobs?status=accepted")
    assert [j["id"] for j in accepted["items"]] == [jobs[0]["id"]]
    first = await staffed.get_json("/v1/jobs?limit=2")
    second = await staffed.get_json(f"/v1/jobs?limit=2&cursor={first['next_cursor']}")
    assert [j["id"] for j in first["items"] + second["items"]] == [j["id"] for j in reversed(jobs)]
    bad = await staffed.client.get("/v1/jobs?status=sleeping", headers=staffed.dispatcher)
    assert_problem(bad, 422, field="query.status")


async def test_an_unknown_job_is_a_404_problem_for_every_command(dispatch):
    for action, body in [
        ("assign", {"technician_id": "T1"}),
        ("accept", None),
        ("arrive", None),
        ("complete", {"fixed": True}),
    ]:
        response = await dispatch.client.post(f"/v1/jobs/nope/{action}", json=body, headers=dispatch.dispatcher)
        assert_problem(response, 404, says="job nope does not exist")
    revisit = await dispatch.step("nope", "revisit", dispatch.auth("agent"), satisfaction=5, channel="sms")
    assert_problem(revisit, 404)
    typo = await dispatch.step("nope", "complete", dispatch.dispatcher, fixd=True)
    assert_problem(typo, 422)


async def test_health_readiness_metrics_and_openapi_are_served(dispatch):
    assert (await dispatch.client.get("/healthz")).json() == {"status": "ok"}
    assert (await dispatch.client.get("/readyz")).status_code == 200
    await dispatch.center("C-M")
    metrics = (await dispatch.client.get("/metrics")).text
    assert 'route="/v1/service-centers",service="dispatch",status="201"' in metrics
    spec = (await dispatch.client.get("/openapi.json")).json()
    assert {"/v1/jobs/{job_id}/accept", "/v1/technicians/{technician_id}/queue"} <= set(spec["paths"])
    assert "re-assign" in spec["paths"]["/v1/jobs/{job_id}/assign"]["post"]["description"]


async def test_a_step_retried_with_its_idempotency_key_replays_the_first_answer(staffed, event_bus):
    job = await assigned_job(staffed, event_bus)
    headers = {**staffed.technician("T1"), "Idempotency-Key": "device-42-accept"}
    first = await staffed.client.post(f"/v1/jobs/{job['id']}/accept", headers=headers)
    retried = await staffed.client.post(f"/v1/jobs/{job['id']}/accept", headers=headers)
    assert first.status_code == retried.status_code == 200 and retried.json() == first.json()
    assert retried.headers["idempotent-replayed"] == "true"
    without_key = await staffed.step(job["id"], "accept", staffed.technician("T1"))
    assert_problem(without_key, 409, says="cannot accept a job that is accepted")
    assert (await staffed.stream_types(job["id"])).count("job.accepted") == 1
