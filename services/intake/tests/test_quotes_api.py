"""The paid-service quote gate over HTTP, with warranty played on the session's real Kafka broker: its coverage
verdict and its parts catalogue (`part.registered`) reach intake as warranty publishes them."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from services.intake.app import create_app
from services.intake.reactions import CONSUMES
from services.intake.read_model import part_prices, rebuild, service_requests
from services.intake.tests.conftest import Intake, intake_settings
from shared.clock import FixedClock
from shared.contracts.topics import INTAKE
from shared.contracts.warranty import PartRegistered, WarrantyChecked
from shared.eventstore.store import EventStore
from shared.eventstore.tables import events
from shared.scheduling import deadlines
from shared.testing.app import all_published, eventually, running
from shared.testing.kafka import collect, envelope_for, headers_of, publish, start_group_at_end, subject_is


async def started_at_the_end(settings, clock: FixedClock | None = None) -> object:
    """intake on its own consumer group, started at the topics' end: it reads what this test publishes without
    first wading through what the session's other tests left on the broker."""
    await start_group_at_end(settings.kafka_bootstrap, settings.consumer_group, list(CONSUMES))
    return create_app(settings, clock=clock, configure_logs=False)


@pytest.fixture
async def intake(tmp_path, event_bus):
    settings = intake_settings(tmp_path, event_bus)
    app = await started_at_the_end(settings)
    async with running(app) as client:
        yield Intake(client, settings, app)


def part(number: str, price: str, name: str = "Gearbox seal", currency: str = "EUR") -> PartRegistered:
    return PartRegistered(
        part_number=number,
        name=name,
        category="gearbox",
        unit_price=Decimal(price),
        currency=currency,
        registered_by="user:officer",
    )


async def price_of(intake: Intake, number: str) -> str | None:
    async with intake.app.state.runtime.db.read() as conn:
        return (
            await conn.execute(select(part_prices.c.unit_price).where(part_prices.c.part_number == number))
        ).scalar_one_or_none()


async def in_catalogue(intake: Intake, kafka: str, *registrations: PartRegistered, expect: dict[str, str]) -> None:
    """Publish the registrations as warranty does (each part its own stream), wait until intake prices them."""
    await publish(kafka, *(envelope_for(r, source="warranty") for r in registrations))
    for number, price in expect.items():
        await eventually(lambda n=number: price_of(intake, n), until=lambda p, want=price: p == want)


async def view_of(intake: Intake, request_id: str, headers=None) -> dict:
    return (await intake.client.get(f"/v1/service-requests/{request_id}", headers=headers or intake.agent)).json()


async def with_coverage(intake: Intake, kafka: str, covered: bool, dealer: str | None = "D1") -> str:
    headers = intake.auth("dealer", dealer_id=dealer) if dealer else intake.agent
    created = await intake.open(headers=headers, channel="dealer" if dealer else "hotline")
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    verdict = WarrantyChecked(
        request_id=request_id,
        serial=created.json()["product"]["serial"],
        covered=covered,
        expires_on="2025-02-28" if not covered else "2027-02-28",
        reason="not covered: the 12-month warranty ended on 2025-02-28" if not covered else "covered",
    )
    await publish(kafka, envelope_for(verdict, source="warranty"))
    await eventually(lambda: view_of(intake, request_id), until=lambda v: v["coverage"] is not None)
    return request_id


async def awaiting_quote(intake: Intake, kafka: str, dealer: str | None = "D1") -> str:
    request_id = await with_coverage(intake, kafka, covered=False, dealer=dealer)
    triaged = await intake.client.post(
        f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"}, headers=intake.agent
    )
    assert triaged.status_code == 200 and triaged.json()["status"] == "awaiting_quote", triaged.text
    return request_id


async def stored_events(intake: Intake) -> int:
    async with intake.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(events))).scalar_one()


def quote_body(**fields) -> dict:
    return {"labour_minutes": 90, "parts": [{"part_number": "GB-100", "quantity": 2}], **fields}


async def test_the_last_registration_of_a_part_prices_the_quote_whatever_order_the_registrations_arrive(
    intake, event_bus
):
    number = f"GB-{uuid.uuid4().hex[:6]}"
    t0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
    first = envelope_for(part(number, "10.00"), source="warranty", time=t0, sequence=1)
    second = envelope_for(part(number, "12.35"), source="warranty", time=t0 + timedelta(days=1), sequence=2)
    await publish(event_bus, second)
    await eventually(lambda: price_of(intake, number), until=lambda p: p == "12.35")
    await publish(event_bus, first, envelope_for(part(number, "99.00"), source="warranty", time=t0, sequence=2))
    marker = f"MK-{uuid.uuid4().hex[:6]}"  # same topic, published after: once it is in, the stale ones were seen
    await in_catalogue(intake, event_bus, part(marker, "1.00"), expect={marker: "1.00"})
    assert await price_of(intake, number) == "12.35", "an older registration does not undo a newer one"

    request_id = await awaiting_quote(intake, event_bus)
    body = {"labour_minutes": 0, "parts": [{"part_number": number, "quantity": 3}]}
    quoted = await intake.client.post(f"/v1/service-requests/{request_id}/quote", json=body, headers=intake.agent)
    assert quoted.status_code == 200, quoted.text
    assert quoted.json()["quote"]["total"] == "37.05"


async def test_an_out_of_warranty_request_is_quoted_and_accepted_by_its_dealer_and_cleared_for_dispatch(
    intake, event_bus
):
    await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
    request_id = await awaiting_quote(intake, event_bus)
    view = await view_of(intake, request_id)
    assert (view["status"], view["dispatch_held"], view["job_id"]) == ("awaiting_quote", True, None)

    quoted = await intake.client.post(
        f"/v1/service-requests/{request_id}/quote", json=quote_body(note="seal kit"), headers=intake.agent
    )
    assert quoted.status_code == 200, quoted.text
    quote = quoted.json()["quote"]
    assert (quote["state"], quote["total"], quote["currency"], quote["labour_minutes"]) == (
        "issued",
        "114.70",  # 90 min at 60.00/h + 2 × 12.35
        "EUR",
        90,
    )
    assert [(line["kind"], line["amount"]) for line in quote["lines"]] == [("labour", "90.00"), ("part", "24.70")]
    issued_at = datetime.fromisoformat(quote["issued_at"])
    assert datetime.fromisoformat(quote["valid_until"]) - issued_at == timedelta(days=14)

    dealer = intake.auth("dealer", dealer_id="D1")
    accepted = await intake.client.post(
        f"/v1/service-requests/{request_id}/quote/accept",
        json={"channel": "dealer", "quote_id": quote["quote_id"]},
        headers=dealer,
    )
    assert accepted.status_code == 200, accepted.text
    after = accepted.json()
    assert (after["status"], after["dispatch_held"], after["quote"]["state"]) == ("triaged", False, "accepted")

    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=7)
    types = [headers_of(r)["ce_type"] for r in records]
    assert types[-3:] == [
        "service_request.quote_issued",
        "service_request.quote_accepted",
        "service_request.cleared_for_dispatch",
    ]
    issued = json.loads(records[-3].value)
    assert (issued["quote_id"], issued["total"], issued["currency"]) == (quote["quote_id"], "114.70", "EUR")
    assert issued["valid_until"] == quote["valid_until"]
    cleared = json.loads(records[-1].value)
    assert cleared["cleared_by"] == "quote_accepted" and cleared["mode"] == "onsite"
    assert cleared["arrive_sla_from"] == headers_of(records[-2])["ce_time"], "the SLA counts from the acceptance"


@pytest.mark.parametrize(
    "body, field",
    [
        (
            {
                "labour_minutes": 30,
                "parts": [{"part_number": "GB-100", "quantity": 1}, {"part_number": "NOPE", "quantity": 1}],
            },
            "parts.1.part_number",
        ),
        ({"labour_minutes": 30, "parts": [{"part_number": "GB-100", "quantity": 0}]}, "parts.0.quantity"),
        ({"labour_minutes": 30, "parts": [{"part_number": "GB-100", "quantity": -3}]}, "parts.0.quantity"),
        ({"labour_minutes": -5, "parts": []}, "labour_minutes"),
        ({"labour_minutes": 0, "parts": []}, "parts"),
    ],
)
async def test_a_quote_with_an_unknown_part_or_a_quantity_below_one_is_a_422_naming_the_field_and_writes_nothing(
    intake, event_bus, body, field
):
    await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
    request_id = await awaiting_quote(intake, event_bus)
    before = await stored_events(intake)
    answer = await intake.client.post(f"/v1/service-requests/{request_id}/quote", json=body, headers=intake.agent)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    named = [e["field"] for e in answer.json()["errors"]]
    assert field in named
    assert await stored_events(intake) == before
    assert (await view_of(intake, request_id))["quote"] is None


async def test_a_quote_for_a_covered_request_or_one_not_awaiting_a_quote_is_a_409(intake, event_bus):
    await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
    covered = await with_coverage(intake, event_bus, covered=True)
    await intake.client.post(f"/v1/service-requests/{covered}/triage", json={"mode": "onsite"}, headers=intake.agent)
    answer = await intake.client.post(f"/v1/service-requests/{covered}/quote", json=quote_body(), headers=intake.agent)
    assert answer.status_code == 409 and "covered by warranty" in answer.json()["detail"]

    untriaged = await with_coverage(intake, event_bus, covered=False)
    answer = await intake.client.post(
        f"/v1/service-requests/{untriaged}/quote", json=quote_body(), headers=intake.agent
    )
    assert answer.status_code == 409 and answer.json()["current_status"] == "received"


async def test_a_declined_quote_closes_the_request_and_can_no_longer_be_accepted(intake, event_bus):
    await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
    request_id = await awaiting_quote(intake, event_bus)
    await intake.client.post(f"/v1/service-requests/{request_id}/quote", json=quote_body(), headers=intake.agent)
    dealer = intake.auth("dealer", dealer_id="D1")
    declined = await intake.client.post(
        f"/v1/service-requests/{request_id}/quote/decline", json={"reason": "too expensive"}, headers=dealer
    )
    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["quote"]["state"]) == ("closed", "declined")
    accepted = await intake.client.post(
        f"/v1/service-requests/{request_id}/quote/accept", json={"channel": "dealer"}, headers=dealer
    )
    assert accepted.status_code == 409 and "declined" in accepted.json()["detail"]
    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=6)
    assert json.loads(records[-1].value) == {"request_id": request_id, "outcome": "quote_declined"}


async def test_another_dealer_cannot_see_quote_accept_or_decline_a_request_it_does_not_own(intake, event_bus):
    await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
    request_id = await awaiting_quote(intake, event_bus)
    await intake.client.post(f"/v1/service-requests/{request_id}/quote", json=quote_body(), headers=intake.agent)
    before = await stored_events(intake)
    stranger = intake.auth("dealer", "agent", dealer_id="D2")
    for action, body in (("accept", {"channel": "dealer"}), ("decline", {"reason": "x"})):
        answer = await intake.client.post(
            f"/v1/service-requests/{request_id}/quote/{action}", json=body, headers=stranger
        )
        assert answer.status_code == 404, answer.text
    own_dealer_quoting = await intake.client.post(
        f"/v1/service-requests/{request_id}/quote", json=quote_body(), headers=intake.auth("dealer", dealer_id="D1")
    )
    assert own_dealer_quoting.status_code == 403, "we issue quotes; the dealer decides on them"
    assert await stored_events(intake) == before


async def test_an_undecided_quote_expires_by_the_timer_and_closes_the_request(tmp_path, event_bus):
    clock = FixedClock(datetime.now(UTC))
    settings = intake_settings(tmp_path, event_bus)  # the quote's validity and the timer's poll are the service's
    app = await started_at_the_end(settings, clock)
    async with running(app) as client:
        intake = Intake(client, settings, app, clock)
        await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
        request_id = await awaiting_quote(intake, event_bus)
        quoted = await client.post(f"/v1/service-requests/{request_id}/quote", json=quote_body(), headers=intake.agent)
        valid_until = quoted.json()["quote"]["valid_until"]
        clock.advance_to(datetime.fromisoformat(valid_until) - timedelta(microseconds=1))
        await all_published(app)  # the timer looked a microsecond before the end
        assert (await view_of(intake, request_id))["quote"]["state"] == "issued"
        clock.advance(microseconds=1)
        closed = await eventually(lambda: view_of(intake, request_id), until=lambda v: v["status"] == "closed")
        assert (closed["quote"]["state"], closed["quote"]["decided_at"]) == ("expired", valid_until)
        assert closed["history"][-2:] == [
            {"type": "service_request.quote_expired", "time": valid_until, "actor": "system:intake"},
            {"type": "service_request.closed", "time": valid_until, "actor": "system:intake"},
        ]
        clock.advance(seconds=1)  # on `valid_until` an acceptance is still in time (the contract's deadline rule)
        late = await client.post(
            f"/v1/service-requests/{request_id}/quote/accept", json={"channel": "hotline"}, headers=intake.agent
        )
        assert late.status_code == 409 and "expired" in late.json()["detail"]
    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=7)
    assert json.loads(records[-1].value)["outcome"] == "quote_expired"


async def test_a_quote_retried_with_its_idempotency_key_is_issued_once_and_answers_the_same(intake, event_bus):
    await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
    request_id = await awaiting_quote(intake, event_bus)
    headers = {**intake.agent, "Idempotency-Key": f"quote-{uuid.uuid4()}"}
    url = f"/v1/service-requests/{request_id}/quote"
    first = await intake.client.post(url, json=quote_body(), headers=headers)
    before = await stored_events(intake)
    again = await intake.client.post(url, json=quote_body(), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["quote"]["quote_id"] == first.json()["quote"]["quote_id"]
    assert await stored_events(intake) == before
    other_body = await intake.client.post(url, json=quote_body(labour_minutes=30), headers=headers)
    assert other_body.status_code == 422


async def test_the_rebuilt_read_model_equals_the_live_one_and_keeps_the_quote_timer_and_the_price_list(
    intake, event_bus
):
    await in_catalogue(intake, event_bus, part("GB-100", "12.35"), expect={"GB-100": "12.35"})
    pending = await awaiting_quote(intake, event_bus)
    declined = await awaiting_quote(intake, event_bus)
    for request_id in (pending, declined):
        await intake.client.post(f"/v1/service-requests/{request_id}/quote", json=quote_body(), headers=intake.agent)
    await intake.client.post(
        f"/v1/service-requests/{declined}/quote/decline", json={"reason": "no"}, headers=intake.agent
    )
    db = intake.app.state.runtime.db

    async def snapshot():
        async with db.read() as conn:
            rows = (await conn.execute(select(service_requests).order_by(service_requests.c.request_id))).all()
            timers = (await conn.execute(select(deadlines).order_by(deadlines.c.name))).all()
        return [tuple(r) for r in rows], [tuple(t) for t in timers]

    live = await snapshot()
    timers = {(stream_id, kind): state for _, stream_id, kind, _, state in live[1]}
    assert timers == {(pending, "quote_expiry"): "pending", (declined, "quote_expiry"): "cancelled"}
    await rebuild(db, EventStore(source="intake"))
    assert await snapshot() == live
    assert await price_of(intake, "GB-100") == "12.35", "the rebuild of intake's own streams keeps the price list"
