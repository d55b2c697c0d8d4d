"""Who caused each step of a request (design.md, "Audit"): the request's history and intake's CloudEvents name
the token's user (with the dealer of a dealer token) for a command and `system:intake` for what intake does
by itself in reaction to another service's event."""

import json
import uuid

from sqlalchemy import select, update

from services.intake.read_model import service_requests
from shared.contracts.dispatch import JobCreated
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.topics import INTAKE
from shared.contracts.warranty import WarrantyChecked
from shared.events import UNKNOWN_ACTOR
from shared.eventstore.tables import events
from shared.testing.app import eventually
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is


async def test_each_step_of_a_requests_history_and_its_event_on_kafka_name_who_caused_it(intake, event_bus):
    clerk = intake.auth("dealer", dealer_id="D1", sub="clerk-7")
    opened = await intake.open(headers=clerk, channel="dealer")
    assert opened.status_code == 201, opened.text
    request_id = opened.json()["id"]
    assert [h["actor"] for h in opened.json()["history"]] == ["user:clerk-7;dealer=D1"]

    url = f"/v1/service-requests/{request_id}"
    triaged = await intake.client.post(
        f"{url}/triage", json={"mode": "onsite"}, headers=intake.auth("agent", sub="agent-3")
    )
    assert triaged.json()["history"][-1]["actor"] == "user:agent-3"

    # warranty's verdict and dispatch's job arrive as those services publish them, caused by their own people
    await publish(
        event_bus,
        envelope_for(
            WarrantyChecked(
                request_id=request_id, serial="SN-X", covered=True, expires_on="2027-03-01", reason="in warranty"
            ),
            source="warranty",
            actor="system:warranty",
        ),
        envelope_for(
            JobCreated(
                job_id=str(uuid.uuid4()),
                request_id=request_id,
                mode=ServiceMode.onsite,
                priority=Priority.P3,
                region="north",
                product_line="tractor",
                dealer_id="D1",
            ),
            source="dispatch",
            actor="user:dispatcher-2",
        ),
    )
    view = await eventually(
        lambda: intake.client.get(url, headers=intake.agent),
        until=lambda r: r.json()["status"] == "dispatched" and r.json()["coverage"] is not None,
    )
    history = [(h["type"], h["actor"]) for h in view.json()["history"]]
    assert history[:2] == [
        ("service_request.received", "user:clerk-7;dealer=D1"),
        ("service_request.triaged", "user:agent-3"),
    ]
    # The rest are intake's own reactions to warranty's verdict and dispatch's job (two topics: either may be
    # taken in first; a triage held for the verdict is cleared for dispatch by it): the service is their actor.
    assert {t for t, _ in history[2:]} >= {"service_request.coverage_recorded", "service_request.dispatched"}
    assert all(actor == "system:intake" for _, actor in history[2:]), history

    seen_by_dealer = (await intake.client.get(url, headers=clerk)).json()
    assert seen_by_dealer["history"] == view.json()["history"]

    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=len(history))
    on_kafka = [(headers_of(r)["ce_type"], headers_of(r)["ce_actor"]) for r in records]
    assert on_kafka == history


async def test_an_admin_command_is_the_admins_and_a_rebuilt_read_model_keeps_every_actor(intake, event_bus):
    request_id = (await intake.open(headers=intake.auth("agent", sub="agent-3"))).json()["id"]
    url = f"/v1/service-requests/{request_id}"
    cancelled = await intake.client.post(
        f"{url}/cancel", json={"reason": "duplicate"}, headers=intake.auth("admin", sub="root")
    )
    assert cancelled.status_code == 200, cancelled.text
    before = cancelled.json()["history"]
    assert [h["actor"] for h in before] == ["user:agent-3", "user:root"]

    await intake.app.state.application.rebuild()
    assert (await intake.client.get(url, headers=intake.agent)).json()["history"] == before


async def test_a_request_stored_before_events_had_actors_still_reads_with_unknown_actors(intake):
    """A row the read model wrote before actors (history entries of {type, time}), over events whose actor the
    migration made `system:unknown`: it still reads, and says so; a rebuild gives the same answer."""
    request_id = (await intake.open()).json()["id"]
    db = intake.app.state.runtime.db
    async with db.transaction() as conn:
        await conn.execute(update(events).where(events.c.stream_id == request_id).values(actor=UNKNOWN_ACTOR))
        view = json.loads(
            (
                await conn.execute(select(service_requests.c.view).where(service_requests.c.request_id == request_id))
            ).scalar_one()
        )
        view["history"] = [{"type": h["type"], "time": h["time"]} for h in view["history"]]
        await conn.execute(
            update(service_requests).where(service_requests.c.request_id == request_id).values(view=json.dumps(view))
        )
    url = f"/v1/service-requests/{request_id}"
    response = await intake.client.get(url, headers=intake.agent)
    assert response.status_code == 200, response.text
    assert [h["actor"] for h in response.json()["history"]] == ["system:unknown"]
    await intake.app.state.application.rebuild()
    assert (await intake.client.get(url, headers=intake.agent)).json() == response.json()
