"""One service request is one trace: HTTP request → event store → relay → Kafka header → consumer."""

import uuid

from services.intake.tests.conftest import Intake, intake_settings
from services.intake.app import create_app
from shared.contracts.topics import INTAKE
from shared.contracts.warranty import WarrantyChecked
from shared.testing.app import eventually, running
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is

CALLER_TRACE = uuid.uuid4().hex
CALLER = f"00-{CALLER_TRACE}-{uuid.uuid4().hex[:16]}-01"


def spans_of(exporter, trace_id: str):
    return [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]


async def test_a_request_is_one_trace_from_http_through_kafka_to_the_consumer(recorded_spans, tmp_path, kafka_bootstrap):
    settings = intake_settings(tmp_path, kafka_bootstrap)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        intake = Intake(client, settings, app)
        created = await intake.client.post("/v1/service-requests", json={
            "channel": "web", "customer": {"name": "T", "phone": "+100", "region": "south"},
            "product": {"serial": f"SN-TR-{uuid.uuid4().hex[:6]}", "model": "M", "product_line": "pump"},
            "symptom": "noise"}, headers={**intake.agent, "traceparent": CALLER})
        request_id = created.json()["id"]
        record = (await collect(kafka_bootstrap, INTAKE, subject_is(request_id), expected=1))[0]
        header = headers_of(record)["traceparent"]
        assert header.split("-")[1] == CALLER_TRACE, "the event carries the caller's trace"

        # Another service reacts, continuing the trace it read from the header.
        reaction = envelope_for(WarrantyChecked(request_id=request_id, serial="x", covered=False, reason="unknown"),
                                source="warranty")
        from dataclasses import replace
        await publish(kafka_bootstrap, replace(reaction, traceparent=header))
        await eventually(lambda: intake.client.get(f"/v1/service-requests/{request_id}", headers=intake.agent),
                         until=lambda r: r.json()["coverage"] is not None)
        await eventually(app.state.runtime.relay.backlog, until=lambda n: n == 0)

    spans = {s.name: s for s in spans_of(recorded_spans, CALLER_TRACE)}
    server = spans["POST /v1/service-requests"]
    by_id = {s.context.span_id: s for s in spans_of(recorded_spans, CALLER_TRACE)}

    def ancestors(span):
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    append = next(s for s in spans_of(recorded_spans, CALLER_TRACE)
                  if s.name == "eventstore.append" and server in ancestors(s))
    publish_span = next(s for s in spans_of(recorded_spans, CALLER_TRACE)
                        if s.name == "intake.events publish" and format(s.context.span_id, "016x") == header.split("-")[2])
    consumer = next(s for s in spans_of(recorded_spans, CALLER_TRACE) if s.name == "warranty.events process warranty.checked")
    assert append.attributes["stream_id"] == request_id
    assert publish_span.attributes["messaging.destination.name"] == "intake.events"
    assert consumer.parent.span_id == publish_span.context.span_id
    assert server.parent.span_id == int(CALLER.split("-")[2], 16), "the server span continues the caller's trace"
    assert server in ancestors(publish_span), "the relay's publish span hangs under the request that caused it"
