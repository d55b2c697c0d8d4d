"""Each intake command publishes exactly the right CloudEvents, in order per request, through the outbox."""

import uuid
from datetime import UTC, datetime, timedelta

from shared.contracts.topics import INTAKE
from shared.testing.app import settled
from shared.testing.kafka import collect, headers_of, subject_is


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_commands_publish_their_cloudevents_in_order_with_time_sequence_and_correlation(intake, event_bus):
    received_at = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    correlation = str(uuid.uuid4())
    created = (
        await intake.client.post(
            "/v1/service-requests",
            json={
                "channel": "dealer",
                "customer": {"name": "Bo", "phone": "+3155501", "region": "west"},
                "product": {"serial": f"SN-{uuid.uuid4().hex[:8]}", "model": "W-9", "product_line": "washer"},
                "purchase_date": "2024-12-24",
                "symptom": "drum does not spin",
                "occurred_at": iso(received_at),
            },
            headers={**intake.agent, "X-Correlation-Id": correlation},
        )
    ).json()
    request_id = created["id"]
    url = f"/v1/service-requests/{request_id}"
    escalated_at = received_at + timedelta(minutes=10)
    await intake.client.post(
        f"{url}/escalate", json={"reason": "needs 2nd level", "occurred_at": iso(escalated_at)}, headers=intake.agent
    )
    await intake.client.post(f"{url}/triage", json={"mode": "phone"}, headers=intake.agent)

    await settled(intake.app)
    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=5)
    headers = [headers_of(r) for r in records]
    assert [h["ce_type"] for h in headers] == [
        "service_request.received",
        "service_request.escalated",
        "service_request.triaged",
        "service_request.resolved",
        "service_request.closed",
    ]
    assert len({r.partition for r in records}) == 1, "one request's events share a partition"
    assert [int(h["ce_sequence"]) for h in headers] == [1, 2, 3, 4, 5]
    for record, h in zip(records, headers):
        assert record.key == request_id.encode() and h["ce_subject"] == request_id
        assert h["ce_specversion"] == "1.0" and h["ce_source"] == "intake"
        assert h["content-type"] == "application/json"
        assert h["ce_dataschema"] == f"{h['ce_type']}/1"
        assert uuid.UUID(h["ce_id"])
    assert headers[0]["ce_time"] == iso(received_at)
    assert headers[1]["ce_time"] == iso(escalated_at)
    assert headers[0]["ce_correlationid"] == headers[0]["ce_causationid"] == correlation
    assert headers[2]["ce_correlationid"] == headers[2]["ce_causationid"] != correlation
    assert headers[2]["ce_time"] == headers[3]["ce_time"] == headers[4]["ce_time"]
    assert len({h["ce_id"] for h in headers}) == 5
    assert headers[0]["traceparent"].startswith("00-") and len(headers[0]["traceparent"]) == 55, (
        "a command without a traceparent starts a trace of its own"
    )

    import json

    data = json.loads(records[0].value)
    assert data == {
        "request_id": request_id,
        "dealer_id": None,
        "channel": "dealer",
        "customer": {"name": "Bo", "phone": "+3155501", "region": "west"},
        "product": {"serial": created["product"]["serial"], "model": "W-9", "product_line": "washer"},
        "purchase_date": "2024-12-24",
        "symptom": "drum does not spin",
        "customer_tier": "standard",
        "urgent": False,
    }
    assert json.loads(records[2].value) == {
        "request_id": request_id,
        "mode": "phone",
        "priority": "P3",
        "note": None,
        "dispatch_held": False,
    }
    assert json.loads(records[4].value) == {"request_id": request_id, "outcome": "resolved_by_phone"}


async def test_a_refused_command_publishes_nothing(intake, event_bus):
    request_id = (await intake.open()).json()["id"]
    url = f"/v1/service-requests/{request_id}"
    assert (await intake.client.post(f"{url}/cancel", json={"reason": "dup"}, headers=intake.agent)).status_code == 200
    assert (await intake.client.post(f"{url}/triage", json={"mode": "onsite"}, headers=intake.agent)).status_code == 409
    await settled(intake.app)
    records = await collect(event_bus, INTAKE, subject_is(request_id), expected=2)
    assert [headers_of(r)["ce_type"] for r in records] == ["service_request.received", "service_request.cancelled"]
