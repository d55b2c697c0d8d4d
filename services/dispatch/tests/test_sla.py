"""SLA breaches on a real database and Kafka: announced by the live timer, or by a step recorded late; once per
job and kind, stamped with the deadline; withdrawn when a late-synced step proves the timer wrong; neither
lost nor repeated across restarts."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.dispatch.app import create_app
from services.dispatch.tests.conftest import (
    BACKENDS,
    Dispatch,
    database_url_for,
    dispatch_settings,
    start_group_at_end,
    triaged_request,
)
from shared.clock import FixedClock
from shared.contracts.enums import Priority
from shared.contracts.topics import DISPATCH, INTAKE
from shared.scheduling import deadlines
from shared.testing.app import all_published, eventually, running
from shared.testing.kafka import collect, headers_of, subject_is

FAST = {"P1": 0.02, "P2": 0.02, "P3": 0.02}  # 1.2 seconds to accept (passed by moving a test clock)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def staff(dispatch: Dispatch) -> None:
    await dispatch.center("C1")
    await dispatch.technician_in("T1", "C1")


async def deadline_states(dispatch: Dispatch, job_id: str) -> dict[str, str]:
    async with dispatch.app.state.runtime.db.read() as conn:
        return dict(
            (
                await conn.execute(select(deadlines.c.kind, deadlines.c.state).where(deadlines.c.stream_id == job_id))
            ).all()
        )


async def running_dispatch(settings, clock=None):
    app = create_app(settings, clock=clock, configure_logs=False)
    return app, running(app)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_live_timer_announces_a_missed_acceptance_once_stamped_with_its_deadline(
    request, tmp_path, event_bus, backend
):
    url = await database_url_for(request, tmp_path, backend)
    clock = FixedClock(datetime.now(UTC))
    settings = dispatch_settings(tmp_path, event_bus, database_url=url, sla_accept_minutes=FAST)
    await start_group_at_end(event_bus, settings.consumer_group, [INTAKE])
    app, context = await running_dispatch(settings, clock)
    async with context as client:
        dispatch = Dispatch(client, settings, app)
        await staff(dispatch)
        job = await dispatch.job_of(await triaged_request(event_bus))
        assert datetime.fromisoformat(job["accept_due"]) - datetime.fromisoformat(job["created_at"]) == timedelta(
            seconds=1.2
        )
        clock.advance_to(datetime.fromisoformat(job["accept_due"]))
        breached = await eventually(
            lambda: dispatch.get_json(f"/v1/jobs/{job['id']}"), until=lambda j: j["sla"]["accept"]["breached"]
        )
        assert breached["history"][-1] == {
            "type": "job.sla_breached",
            "time": job["accept_due"],
            "actor": "system:dispatch",
        }
        clock.advance(seconds=1)  # on the deadline a step is still in time
        late = await dispatch.step(job["id"], "accept", dispatch.technician("T1"))
        assert late.status_code == 200 and late.json()["sla"]["accept"]["breached"] is True
        await all_published(app)  # the relay does not drain the outbox when it stops

    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=4)
    assert [headers_of(r)["ce_type"] for r in records] == [
        "job.created",
        "job.assigned",
        "job.sla_breached",
        "job.accepted",
    ]
    breach = records[2]
    assert headers_of(breach)["ce_time"] == job["accept_due"]
    assert json.loads(breach.value) == {
        "job_id": job["id"],
        "request_id": job["request_id"],
        "kind": "accept",
        "due": job["accept_due"],
    }
    assert headers_of(breach)["ce_correlationid"] == headers_of(records[0])["ce_correlationid"], (
        "the timer's event continues the chain that created the job"
    )

    app, context = await running_dispatch(settings, clock)
    async with context as client:
        restarted = Dispatch(client, settings, app)
        assert await app.state.runtime.scheduler.fire_due() == 0, "a restart does not repeat the breach"
        assert (await restarted.stream_types(job["id"])).count("job.sla_breached") == 1
        assert await deadline_states(restarted, job["id"]) == {"accept": "fired", "arrive": "pending"}


async def test_a_deadline_that_passes_while_dispatch_is_down_fires_once_after_the_restart(tmp_path, event_bus):
    clock = FixedClock(datetime.now(UTC))
    settings = dispatch_settings(tmp_path, event_bus)
    await start_group_at_end(event_bus, settings.consumer_group, [INTAKE])
    app, context = await running_dispatch(settings, clock)
    async with context as client:
        dispatch = Dispatch(client, settings, app)
        await staff(dispatch)
        job = await dispatch.job_of(await triaged_request(event_bus, priority=Priority.P1, triaged_at=clock.now()))
    clock.advance(minutes=31)  # P1: 30 minutes to accept; nobody did, and nobody was watching

    app, context = await running_dispatch(settings, clock)
    async with context as client:
        dispatch = Dispatch(client, settings, app)
        view = await eventually(
            lambda: dispatch.get_json(f"/v1/jobs/{job['id']}"), until=lambda j: j["sla"]["accept"]["breached"]
        )
        assert view["history"][-1] == {
            "type": "job.sla_breached",
            "time": job["accept_due"],
            "actor": "system:dispatch",
        }
        assert await app.state.runtime.scheduler.fire_due() == 0
    assert (await dispatch.stream_types(job["id"])).count("job.sla_breached") == 1


async def test_a_step_recorded_late_announces_the_breach_itself_before_the_timer(tmp_path, event_bus):
    # The timer looks once at start-up and is then stopped, and the service's clock passes the arrive deadline
    # only after that look (a fast consumer may create the job before it): whatever breach appears is the step's.
    settings = dispatch_settings(tmp_path, event_bus)
    await start_group_at_end(event_bus, settings.consumer_group, [INTAKE])
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now)
    received_at = now - timedelta(hours=3)  # P1: arrive within 4 hours of the receipt; due in an hour
    app, context = await running_dispatch(settings, clock)
    async with context as client:
        dispatch = Dispatch(client, settings, app)
        await staff(dispatch)
        job = await dispatch.job_of(
            await triaged_request(
                event_bus, priority=Priority.P1, received_at=received_at, triaged_at=now - timedelta(minutes=10)
            )
        )
        t1 = dispatch.technician("T1")
        await dispatch.step(job["id"], "accept", t1, occurred_at=iso(now - timedelta(minutes=5)))

        scheduler = app.state.runtime.scheduler
        await eventually(lambda: asyncio.sleep(0, scheduler.rounds), until=bool)  # its first round is over
        await scheduler.stop()
        clock.advance(hours=2)  # an hour past the arrive deadline
        command = str(uuid.uuid4())
        arrived = await dispatch.client.post(
            f"/v1/jobs/{job['id']}/arrive",
            json={"occurred_at": iso(clock.now())},
            headers={**t1, "X-Correlation-Id": command},
        )
        assert arrived.status_code == 200, arrived.text
        assert arrived.json()["sla"]["arrive"] == {
            "due": iso(received_at + timedelta(hours=4)),
            "done_at": iso(clock.now()),
            "breached": True,
        }
        assert await deadline_states(dispatch, job["id"]) == {"accept": "cancelled", "arrive": "cancelled"}
        await all_published(app)

    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=5)
    assert [headers_of(r)["ce_type"] for r in records] == [
        "job.created",
        "job.assigned",
        "job.accepted",
        "job.sla_breached",
        "job.arrived",
    ]
    breach = headers_of(records[3])
    assert breach["ce_time"] == iso(received_at + timedelta(hours=4)), "stamped with the deadline"
    assert breach["ce_causationid"] == command, "caused by the late step"

    fast = dispatch_settings(tmp_path, event_bus, consumer_group=settings.consumer_group)
    app, context = await running_dispatch(fast)
    async with context as client:
        restarted = Dispatch(client, fast, app)
        assert await app.state.runtime.scheduler.fire_due() == 0, "the live timer does not announce it again"
        assert (await restarted.stream_types(job["id"])).count("job.sla_breached") == 1


async def test_a_late_synced_step_that_was_in_time_withdraws_the_timers_breach(tmp_path, event_bus):
    clock = FixedClock(datetime.now(UTC))
    settings = dispatch_settings(tmp_path, event_bus, sla_accept_minutes=FAST)
    await start_group_at_end(event_bus, settings.consumer_group, [INTAKE])
    app, context = await running_dispatch(settings, clock)
    async with context as client:
        dispatch = Dispatch(client, settings, app)
        await staff(dispatch)
        job = await dispatch.job_of(await triaged_request(event_bus))
        clock.advance_to(datetime.fromisoformat(job["accept_due"]))
        await eventually(
            lambda: dispatch.get_json(f"/v1/jobs/{job['id']}"), until=lambda j: j["sla"]["accept"]["breached"]
        )
        accepted_offline = datetime.fromisoformat(job["created_at"]) + timedelta(seconds=1)
        synced = await dispatch.step(job["id"], "accept", dispatch.technician("T1"), occurred_at=iso(accepted_offline))
        assert synced.status_code == 200, synced.text
        assert synced.json()["sla"]["accept"] == {
            "due": job["accept_due"],
            "done_at": iso(accepted_offline),
            "breached": False,
        }
        await all_published(app)

    records = await collect(event_bus, DISPATCH, subject_is(job["id"]), expected=5)
    assert [headers_of(r)["ce_type"] for r in records] == [
        "job.created",
        "job.assigned",
        "job.sla_breached",
        "job.accepted",
        "job.sla_breach_withdrawn",
    ]
    withdrawn = records[4]
    assert headers_of(withdrawn)["ce_time"] == job["accept_due"], "stamped like the breach it withdraws"
    assert json.loads(withdrawn.value)["kind"] == "accept"
