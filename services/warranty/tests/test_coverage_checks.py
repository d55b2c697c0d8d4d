"""A `warranty.checked` for every received request, judged on its received date, through the broker."""

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

from services.warranty.tests.conftest import received, serial
from shared.contracts.topics import WARRANTY
from shared.testing.app import settled
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is


async def checked(warranty, request_id: str) -> list:
    return await collect(warranty.kafka, WARRANTY, subject_is(request_id), expected=1)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_a_registered_unit_is_judged_from_its_sale_on_the_requests_received_date(warranty):
    sn = serial()
    await warranty.register(sn, warranty.today - timedelta(days=375))  # default policy: 12 months
    expires_on = date.fromisoformat(
        (await warranty.client.get(f"/v1/coverage?serial={sn}", headers=warranty.officer)).json()["expires_on"]
    )
    assert expires_on < warranty.today, "the unit is out of warranty today"
    received_at = warranty.clock.now() - timedelta(days=(warranty.today - expires_on).days)  # on the last day
    request = received(sn, purchase_date=date(2020, 1, 1))
    cause = envelope_for(request, source="intake", time=received_at)
    await publish(warranty.kafka, cause)

    record = (await checked(warranty, request.request_id))[0]
    data, headers = json.loads(record.value), headers_of(record)
    assert (data["covered"], data["expires_on"], data["basis"]) == (True, expires_on.isoformat(), "registered_sale")
    assert data["judged_on"] == received_at.date().isoformat() and data["serial"] == sn
    assert "the registered sale on" in data["reason"]
    assert headers["ce_type"] == "warranty.checked" and headers["ce_time"] == rfc3339(received_at)
    assert headers["ce_causationid"] == cause.id and headers["ce_correlationid"] == cause.correlationid


async def test_an_unregistered_unit_is_judged_from_the_purchase_date_and_the_reason_says_so(warranty):
    sn = serial()
    request = received(sn, purchase_date=warranty.today - timedelta(days=30))
    await publish(warranty.kafka, envelope_for(request, source="intake"))
    data = json.loads((await checked(warranty, request.request_id))[0].value)
    assert (data["covered"], data["basis"]) == (True, "purchase_date")
    assert f"given on the request (serial {sn} is not registered)" in data["reason"]


async def test_without_registration_or_purchase_date_the_request_is_not_covered(warranty):
    request = received(serial(), purchase_date=None)
    await publish(warranty.kafka, envelope_for(request, source="intake"))
    data = json.loads((await checked(warranty, request.request_id))[0].value)
    assert (data["covered"], data["expires_on"], data["basis"]) == (False, None, "none")


async def test_a_request_seen_twice_even_as_another_event_is_checked_once(warranty):
    request = received(serial(), purchase_date=warranty.today)
    first = envelope_for(request, source="intake")
    await publish(warranty.kafka, first, first, replace(first, id="another-delivery-of-the-same-fact"))
    await settled(warranty.app)  # every delivery read, what they caused published
    records = await checked(warranty, request.request_id)
    assert len(records) == 1
