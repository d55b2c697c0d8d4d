"""One service request is one trace: HTTP request → event store → relay → Kafka header → consumer."""

import uuid
from datetime import UTC, datetime, timedelta

from services.intake.app import create_app
from services.intake.tests.conftest import Intake, intake_settings
from shared.contracts.topics import INTAKE
from shared.contracts.warranty import WarrantyChecked
from shared.testing.app import eventually, running
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is

CALLER_TRACE = uuid.uuid4().hex
CALLER = f"00-{CALLER_TRACE}-{uuid.uuid4().hex[:16]}-01"


def spans_of(exporter, trace_id: str):
    return [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]


async def test_a_request_is_one_trace_from_http_through_kafka_to_the_consumer(recorded_spans, tmp_path, event_bus):
    settings = intake_settings(tmp_path, event_bus)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        intake = Intake(client, settings, app)
        created = await intake.client.post(
            "/v1/service-requests",
            json={
                "channel": "web",
                "customer": {"name": "T", "phone": "+100", "region": "south"},
                "product": {"serial": f"SN-TR-{uuid.uuid4().hex[:6]}", "model": "M", "product_line": "pump"},
                "symptom": "noise",
            },
            headers={**intake.agent, "traceparent": CALLER},
        )
        request_id = created.json()["id"]
        record = (await collect(event_bus, INTAKE, subject_is(request_id), expected=1))[0]
        header = headers_of(record)["traceparent"]
        assert header.split("-")[1] == CALLER_TRACE, "the event carries the caller's trace"

        # Another service reacts, continuing the trace it read from the header.
        reaction = envelope_for(
            WarrantyChecked(request_id=request_id, serial="x", covered=False, reason="unknown"), source="warranty"
        )
        from dataclasses import replace

        await publish(event_bus, replace(reaction, traceparent=header))
        await eventually(
            lambda: intake.client.get(f"/v1/service-requests/{request_id}", headers=intake.agent),
            until=lambda r: r.json()["coverage"] is not None,
        )
        await eventually(app.state.runtime.relay.backlog, until=lambda n: n == 0)

    spans = {s.name: s for s in spans_of(recorded_spans, CALLER_TRACE)}
    server = spans["POST /v1/service-requests"]
    by_id = {s.context.span_id: s for s in spans_of(recorded_spans, CALLER_TRACE)}

    def ancestors(span):
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    append = next(
        s for s in spans_of(recorded_spans, CALLER_TRACE) if s.name == "eventstore.append" and server in ancestors(s)
    )
    publish_span = next(
        s
        for s in spans_of(recorded_spans, CALLER_TRACE)
        if s.name == "intake.events publish" and format(s.context.span_id, "016x") == header.split("-")[2]
    )
    consumer = next(
        s for s in spans_of(recorded_spans, CALLER_TRACE) if s.name == "warranty.events process warranty.checked"
    )
    assert append.attributes["stream_id"] == request_id
    assert publish_span.attributes["messaging.destination.name"] == "intake.events"
    assert consumer.parent.span_id == publish_span.context.span_id
    assert server.parent.span_id == int(CALLER.split("-")[2], 16), "the server span continues the caller's trace"
    assert server in ancestors(publish_span), "the relay's publish span hangs under the request that caused it"


async def test_one_service_request_is_one_trace_across_intake_warranty_and_dispatch(
    recorded_spans, tmp_path, event_bus
):
    from services.dispatch.app import DispatchSettings
    from services.dispatch.app import create_app as dispatch_app
    from services.warranty.app import WarrantySettings
    from services.warranty.app import create_app as warranty_app
    from shared.contracts.topics import DISPATCH
    from shared.testing.kafka import group_at_end

    trace_id = uuid.uuid4().hex
    caller = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    common = dict(kafka_bootstrap=event_bus, relay_poll_interval_ms=50, log_json=False)
    intake_app = create_app(intake_settings(tmp_path, event_bus), configure_logs=False)
    warranty = warranty_app(
        WarrantySettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/w.db",
            **common,
            consumer_group=await group_at_end(event_bus, [INTAKE, DISPATCH], "w"),
        ),
        configure_logs=False,
    )
    dispatch = dispatch_app(
        DispatchSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/d.db",
            **common,
            consumer_group=await group_at_end(event_bus, [INTAKE], "d"),
        ),
        configure_logs=False,
    )
    async with running(warranty), running(dispatch), running(intake_app) as client:
        intake = Intake(client, intake_app.state.settings, intake_app)
        headers = {**intake.agent, "traceparent": caller}
        created = await intake.client.post(
            "/v1/service-requests",
            headers=headers,
            json={
                "channel": "hotline",
                "customer": {"name": "T", "phone": "+100", "region": "south"},
                "product": {"serial": f"SN-3S-{uuid.uuid4().hex[:6]}", "model": "M", "product_line": "pump"},
                # Within warranty's default coverage: field work of a unit not covered waits for a quote.
                "purchase_date": (datetime.now(UTC).date() - timedelta(days=60)).isoformat(),
                "symptom": "noise",
            },
        )
        request_id = created.json()["id"]
        await intake.client.post(f"/v1/service-requests/{request_id}/triage", json={"mode": "onsite"}, headers=headers)
        view = await eventually(
            lambda: intake.client.get(f"/v1/service-requests/{request_id}", headers=intake.agent),
            until=lambda r: r.json()["coverage"] is not None and r.json()["status"] == "dispatched",
            timeout=30,
        )
        assert view.json()["job_id"]

    spans = spans_of(recorded_spans, trace_id)
    services = {s.attributes.get("servicetrail.service") for s in spans}
    assert {"intake", "warranty", "dispatch"} <= services, services
    names = {s.name for s in spans}
    assert {
        "intake.events process service_request.received",
        "warranty.events publish",
        "intake.events process service_request.triaged",
        "dispatch.events publish",
        "warranty.events process warranty.checked",
        "dispatch.events process job.created",
    } <= names
