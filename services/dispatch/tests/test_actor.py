"""Who caused each step of a job (design.md, "Audit"): the job's history and dispatch's CloudEvents name
`system:dispatch` for what dispatch does by itself (the job made and auto-assigned in reaction to intake's
triage), the token's user for a command, with the dealer of a dealer token. The SLA timer's breach is
`system:dispatch` too (test_sla)."""

from services.dispatch.tests.conftest import triaged_request
from shared.contracts.topics import DISPATCH
from shared.testing.kafka import collect, headers_of, subject_is


async def test_each_step_of_a_jobs_history_and_its_event_on_kafka_name_who_caused_it(staffed, event_bus):
    dispatch = staffed
    assert (await dispatch.technician_in("T2", "C1")).status_code == 201
    job = await dispatch.job_of(await triaged_request(event_bus, dealer_id="D1"))
    assert [(h["type"], h["actor"]) for h in job["history"]] == [
        ("job.created", "system:dispatch"),
        ("job.assigned", "system:dispatch"),
    ]

    assigned = await dispatch.step(job["id"], "assign", dispatch.auth("dispatcher", sub="disp-1"), technician_id="T2")
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["history"][-1]["actor"] == "user:disp-1"
    technician = dispatch.technician("T2")
    for action, body in (("accept", {}), ("arrive", {}), ("complete", {"fixed": True, "resolution": "new belt"})):
        response = await dispatch.step(job["id"], action, technician, **body)
        assert response.status_code == 200, response.text
    clerk = dispatch.auth("dealer", dealer_id="D1", sub="clerk-7")
    revisit = await dispatch.step(job["id"], "revisit", clerk, satisfaction=5, nps=9, channel="phone")
    assert revisit.status_code == 200, revisit.text

    expected = [
        ("job.created", "system:dispatch"),
        ("job.assigned", "system:dispatch"),
        ("job.assigned", "user:disp-1"),
        ("job.accepted", "user:T2"),
        ("job.arrived", "user:T2"),
        ("job.completed", "user:T2"),
        ("revisit.done", "user:clerk-7;dealer=D1"),
    ]
    assert [(h["type"], h["actor"]) for h in revisit.json()["history"]] == expected
    stored = await dispatch.get_json(f"/v1/jobs/{job['id']}", headers=clerk)
    assert [(h["type"], h["actor"]) for h in stored["history"]] == expected

    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=len(expected))
    assert [(headers_of(r)["ce_type"], headers_of(r)["ce_actor"]) for r in records] == expected
