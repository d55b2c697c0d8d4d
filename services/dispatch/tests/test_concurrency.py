"""Races on a real database: one acceptance per job however the technicians and the dispatcher collide, and one
job per request however many replicas see its triage."""

import asyncio

import pytest
from sqlalchemy import func, select

from services.dispatch.app import create_app
from services.dispatch.tests.conftest import (
    BACKENDS,
    Dispatch,
    assigned_job,
    database_url_for,
    dispatch_settings,
    request_events,
    start_group_at_end,
)
from shared.contracts.topics import INTAKE
from shared.eventstore.tables import events
from shared.testing.app import eventually, running
from shared.testing.kafka import publish


@pytest.mark.parametrize("dispatch", BACKENDS, indirect=True)
async def test_two_technicians_accepting_the_same_job_at_once_one_wins(staffed, event_bus):
    await staffed.technician_in("T2", "C1")
    for _ in range(4):
        job = await assigned_job(staffed, event_bus)

        async def reassign_then_accept_as_t2():
            reassigned = await staffed.client.post(
                f"/v1/jobs/{job['id']}/assign", json={"technician_id": "T2"}, headers=staffed.dispatcher
            )
            return reassigned, await staffed.step(job["id"], "accept", staffed.technician("T2"))

        t1, (reassigned, t2) = await asyncio.gather(
            staffed.step(job["id"], "accept", staffed.technician("T1")), reassign_then_accept_as_t2()
        )
        losers = {t1.status_code, t2.status_code} - {200}
        assert [t1.status_code, t2.status_code].count(200) == 1 and losers <= {403, 409}, [
            t1.text,
            reassigned.text,
            t2.text,
        ]
        winner = "T1" if t1.status_code == 200 else "T2"
        final = await staffed.get_json(f"/v1/jobs/{job['id']}")
        assert (final["status"], final["technician_id"]) == ("accepted", winner)
        assert (await staffed.stream_types(job["id"])).count("job.accepted") == 1


@pytest.mark.parametrize("dispatch", BACKENDS, indirect=True)
async def test_the_same_technician_accepting_twice_at_once_records_one_acceptance(staffed, event_bus):
    job = await assigned_job(staffed, event_bus)
    results = await asyncio.gather(*(staffed.step(job["id"], "accept", staffed.technician("T1")) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [200, 409, 409]
    assert (await staffed.stream_types(job["id"])).count("job.accepted") == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_replicas_on_one_database_seeing_the_same_triages_make_one_job_each(
    request, tmp_path, event_bus, backend
):
    # Separate consumer groups: both replicas receive every event and race to create the same jobs.
    url = await database_url_for(request, tmp_path, backend)
    replicas = [dispatch_settings(tmp_path, event_bus, database_url=url) for _ in range(2)]
    for settings in replicas:
        await start_group_at_end(event_bus, settings.consumer_group, [INTAKE])
    apps = [create_app(settings, configure_logs=False) for settings in replicas]
    async with running(apps[0]) as first, running(apps[1]):
        dispatch = Dispatch(first, replicas[0], apps[0])
        requests = [request_events() for _ in range(20)]
        await publish(event_bus, *(envelope for pair in requests for envelope in pair))
        consumers = [app.state.runtime.consumer for app in apps]
        await eventually(
            lambda: asyncio.sleep(0, [c.counts["applied"] + c.counts["duplicate"] for c in consumers]),
            until=lambda counts: all(n >= 40 for n in counts),
            timeout=30,
        )
        async with apps[0].state.runtime.db.read() as conn:
            created = (
                await conn.execute(
                    select(events.c.stream_id, func.count())
                    .where(events.c.type == "job.created")
                    .group_by(events.c.stream_id)
                )
            ).all()
        assert len(created) == 20 and {n for _, n in created} == {1}
        for received, _ in requests:
            assert len((await dispatch.get_json(f"/v1/jobs?request_id={received.subject}"))["items"]) == 1
