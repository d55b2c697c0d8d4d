"""An acceptance made before the quote's `valid_until` but recorded after its expiry timer fired (a dealer's device
synced late), over HTTP with `occurred_at`, warranty played on the session's event bus: the expiry is
withdrawn and the request goes on to dispatch; one made after `valid_until` is still refused and writes nothing;
a serial a new request took after the expiry is not taken back."""

import asyncio
import json
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from deploy.postgres.launcher import create_database
from services.intake.read_model import open_serials, rebuild, service_requests
from services.intake.tests.conftest import Intake, intake_settings
from services.intake.tests.test_quotes_api import (
    awaiting_quote,
    in_catalogue,
    part,
    quote_body,
    started_at_the_end,
    stored_events,
    view_of,
)
from services.intake.tests.webhook_support import FAST, subscribe, until_received
from shared.clock import FixedClock, rfc3339
from shared.contracts.topics import INTAKE
from shared.eventstore.store import EventStore
from shared.testing.app import eventually, running
from shared.testing.kafka import collect, headers_of, subject_is


@asynccontextmanager
async def quoting_intake(tmp_path, event_bus, **overrides):
    """Intake on a test clock: its quotes valid for the service's own days, which pass when the test moves it."""
    clock = FixedClock(datetime.now(UTC))
    settings = intake_settings(tmp_path, event_bus, **FAST, **overrides)
    app = await started_at_the_end(settings, clock)
    async with running(app) as client:
        intake = Intake(client, settings, app, clock)
        await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
        yield intake


@pytest.fixture
async def intake(tmp_path, event_bus):
    async with quoting_intake(tmp_path, event_bus) as intake:
        yield intake


@pytest.fixture(params=["sqlite", "postgresql"])
async def intake_on(request, tmp_path, event_bus):
    """On PostgreSQL the two commands of a race run truly at once (on SQLite the group commit takes them in
    turn): the serial's key decides, and the loser's 409 still names the winner."""
    overrides = {}
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        overrides["database_url"] = await create_database(server, f"intake_{uuid.uuid4().hex[:8]}")
    async with quoting_intake(tmp_path, event_bus, **overrides) as intake:
        yield intake


async def expired_by_the_timer(intake: Intake, kafka: str, dealer: str = "D1") -> tuple[str, dict]:
    """A request of `dealer` whose quote the timer expired (the request closed `quote_expired`), and the quote."""
    request_id = await awaiting_quote(intake, kafka, dealer=dealer)
    quoted = await intake.client.post(
        f"/v1/service-requests/{request_id}/quote", json=quote_body(), headers=intake.agent
    )
    assert quoted.status_code == 200, quoted.text
    quote = quoted.json()["quote"]
    assert intake.clock is not None
    intake.clock.advance_to(datetime.fromisoformat(quote["valid_until"]))
    await eventually(lambda: view_of(intake, request_id), until=lambda v: v["status"] == "closed")
    intake.clock.advance(seconds=1)  # and time goes on
    return request_id, quote


def moment(quote: dict, after_issue: timedelta) -> str:
    return rfc3339(datetime.fromisoformat(quote["issued_at"]) + after_issue)


async def accept(intake: Intake, request_id: str, occurred_at: str | None, dealer: str = "D1"):
    body = {"channel": "dealer", **({"occurred_at": occurred_at} if occurred_at else {})}
    return await intake.client.post(
        f"/v1/service-requests/{request_id}/quote/accept", json=body, headers=intake.auth("dealer", dealer_id=dealer)
    )


async def test_a_late_synced_acceptance_made_before_valid_until_withdraws_the_expiry_and_clears_the_request(
    intake, event_bus, receiver
):
    hook = await subscribe(intake, receiver.url, ["service_request.quote_expiry_withdrawn"], dealer_id="D1")
    request_id, quote = await expired_by_the_timer(intake, event_bus)
    valid_until = quote["valid_until"]
    accepted_at = moment(quote, timedelta(seconds=1))

    answer = await accept(intake, request_id, accepted_at)

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert (view["status"], view["dispatch_held"]) == ("triaged", False), "no longer closed: on to dispatch"
    assert (view["quote"]["state"], view["quote"]["decided_at"]) == ("accepted", accepted_at)
    assert [(h["type"], h["time"], h["actor"].split(":")[0]) for h in view["history"][-5:]] == [
        ("service_request.quote_expired", valid_until, "system"),
        ("service_request.closed", valid_until, "system"),
        ("service_request.quote_expiry_withdrawn", valid_until, "user"),  # in the expiry's window
        ("service_request.quote_accepted", accepted_at, "user"),
        ("service_request.cleared_for_dispatch", accepted_at, "user"),
    ]
    assert view["history"][-1]["actor"].endswith(";dealer=D1"), "recorded as the dealer's"

    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=10)
    assert [headers_of(r)["ce_type"] for r in records][-3:] == [
        "service_request.quote_expiry_withdrawn",
        "service_request.quote_accepted",
        "service_request.cleared_for_dispatch",
    ]
    assert [headers_of(r)["ce_time"] for r in records[-3:]] == [valid_until, accepted_at, accepted_at]
    assert json.loads(records[-3].value) == {
        "request_id": request_id,
        "quote_id": quote["quote_id"],
        "accepted_at": accepted_at,
    }
    assert json.loads(records[-1].value)["arrive_sla_from"] == accepted_at, "the SLA counts from the acceptance"

    delivered = await until_received(receiver, 1)
    assert [(e["type"], e["data"]["request_id"]) for e in delivered] == [
        ("service_request.quote_expiry_withdrawn", request_id)
    ], f"the dealer's subscription {hook['id']} receives the withdrawal"

    same_unit = await intake.open(serial=view["product"]["serial"])
    assert same_unit.status_code == 409 and same_unit.json()["existing_id"] == request_id, "it holds its serial again"


async def test_an_acceptance_at_or_after_valid_until_is_still_refused_naming_occurred_at_and_writes_nothing(
    intake, event_bus
):
    request_id, quote = await expired_by_the_timer(intake, event_bus)
    before = await stored_events(intake)

    just_late = rfc3339(datetime.fromisoformat(quote["valid_until"]) + timedelta(milliseconds=1))
    for late in (just_late, None):  # None: now
        refused = await accept(intake, request_id, late)
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["errors"][0]["field"] == "occurred_at" and "expired" in problem["detail"]
        assert datetime.fromisoformat(problem["valid_until"]) == datetime.fromisoformat(quote["valid_until"])

    assert await stored_events(intake) == before
    view = await view_of(intake, request_id)
    assert (view["status"], view["quote"]["state"]) == ("closed", "expired")
    assert (await intake.open(serial=view["product"]["serial"])).status_code == 201, "the serial stays free"


async def test_a_late_acceptance_is_refused_naming_the_serial_when_a_new_request_took_it_after_the_expiry(
    intake, event_bus
):
    request_id, quote = await expired_by_the_timer(intake, event_bus)
    serial = (await view_of(intake, request_id))["product"]["serial"]
    newer = await intake.open(serial=serial, headers=intake.auth("dealer", dealer_id="D2"), channel="dealer")
    assert newer.status_code == 201, newer.text
    before = await stored_events(intake)

    as_agent = await intake.client.post(
        f"/v1/service-requests/{request_id}/quote/accept",
        json={"channel": "hotline", "occurred_at": moment(quote, timedelta(seconds=1))},
        headers=intake.agent,
    )
    assert as_agent.status_code == 409, as_agent.text
    assert as_agent.json()["errors"][0]["field"] == "product.serial"
    assert as_agent.json()["existing_id"] == newer.json()["id"]
    as_dealer = await accept(intake, request_id, moment(quote, timedelta(seconds=1)))
    assert as_dealer.status_code == 409 and as_dealer.json().get("existing_id") is None, "not another dealer's id"

    assert await stored_events(intake) == before
    assert (await view_of(intake, request_id))["status"] == "closed"


async def test_the_rebuilt_read_model_equals_the_live_one_after_a_withdrawal_serial_reservation_included(
    intake, event_bus
):
    request_id, quote = await expired_by_the_timer(intake, event_bus)
    assert (await accept(intake, request_id, moment(quote, timedelta(seconds=1)))).status_code == 200
    db = intake.app.state.runtime.db

    async def snapshot():
        async with db.read() as conn:
            rows = (await conn.execute(select(service_requests).order_by(service_requests.c.request_id))).all()
            serials = (await conn.execute(select(open_serials).order_by(open_serials.c.serial))).all()
        return [tuple(r) for r in rows], [tuple(s) for s in serials]

    live = await snapshot()
    assert request_id in {request for _, request in live[1]}, "the withdrawal took the serial back"
    await rebuild(db, EventStore(source="intake"))
    assert await snapshot() == live


async def test_a_late_acceptance_racing_a_new_request_for_the_same_serial_leaves_exactly_one_open(intake_on, event_bus):
    intake = intake_on
    request_id, quote = await expired_by_the_timer(intake, event_bus)
    serial = (await view_of(intake, request_id))["product"]["serial"]

    same_dealer = intake.auth("dealer", dealer_id="D1")  # it may learn the winner's id, its own request
    accepted, opened = await asyncio.gather(
        accept(intake, request_id, moment(quote, timedelta(seconds=1))),
        intake.open(serial=serial, headers=same_dealer, channel="dealer"),
    )

    assert sorted([accepted.status_code, opened.status_code]) in ([200, 409], [201, 409]), (accepted, opened)
    winner = request_id if accepted.status_code == 200 else opened.json()["id"]
    loser = opened if accepted.status_code == 200 else accepted
    assert loser.json().get("existing_id") == winner, loser.text
    async with intake.app.state.runtime.db.read() as conn:
        reserved = (await conn.execute(select(open_serials).where(open_serials.c.serial == serial))).all()
        open_rows = (
            await conn.execute(
                select(service_requests.c.request_id).where(
                    service_requests.c.serial == serial, service_requests.c.status.not_in(("closed", "cancelled"))
                )
            )
        ).all()
    assert [r.request_id for r in reserved] == [winner] and [r.request_id for r in open_rows] == [winner]
