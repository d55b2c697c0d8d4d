"""The paid-service events as other consumers read them: analytics stores them (payload only, no DLQ) and reads
the extended `service_request.triaged` as before; an older triage without `dispatch_held` reads as not held."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka.structs import ConsumerRecord

from services.analytics.replay import decode_record
from shared.contracts.enums import Channel, Priority, ServiceMode
from shared.contracts.intake import (
    ClearedBy,
    QuoteLine,
    QuoteLineKind,
    ServiceRequestClearedForDispatch,
    ServiceRequestClosed,
    ServiceRequestQuoteAccepted,
    ServiceRequestQuoteDeclined,
    ServiceRequestQuoteExpired,
    ServiceRequestQuoteExpiryWithdrawn,
    ServiceRequestQuoteIssued,
    ServiceRequestQuoteRequired,
    ServiceRequestTriaged,
)
from shared.messaging.cloudevents import to_record
from shared.testing.kafka import envelope_for

AT = datetime(2026, 11, 30, 10, tzinfo=UTC)


def as_consumed(data) -> ConsumerRecord:
    topic, key, value, headers = to_record(envelope_for(data, source="intake", time=AT))
    return ConsumerRecord(topic, 0, 0, 0, 0, key, value, None, len(key or b""), len(value), headers)


def paid_service_events(request_id: str) -> list:
    line = QuoteLine(
        kind=QuoteLineKind.labour,
        description="Labour, 60 min",
        quantity=60,
        unit_price=Decimal("60.00"),
        amount=Decimal("60.00"),
    )
    return [
        ServiceRequestTriaged(
            request_id=request_id, mode=ServiceMode.onsite, priority=Priority.P3, note=None, dispatch_held=True
        ),
        ServiceRequestQuoteRequired(request_id=request_id, reason="not covered"),
        ServiceRequestQuoteIssued(
            request_id=request_id,
            quote_id="q1",
            lines=[line],
            labour_minutes=60,
            total=Decimal("60.00"),
            currency="EUR",
            valid_until=AT + timedelta(days=14),
        ),
        ServiceRequestQuoteAccepted(
            request_id=request_id, quote_id="q1", channel=Channel.dealer, total=Decimal("60.00"), currency="EUR"
        ),
        ServiceRequestClearedForDispatch(
            request_id=request_id,
            mode=ServiceMode.onsite,
            priority=Priority.P3,
            arrive_sla_from=AT,
            cleared_by=ClearedBy.quote_accepted,
            quote_id="q1",
        ),
        ServiceRequestQuoteDeclined(request_id=request_id, quote_id="q1", reason="too dear"),
        ServiceRequestQuoteExpired(request_id=request_id, quote_id="q1", valid_until=AT),
        ServiceRequestClosed(request_id=request_id, outcome="quote_expired"),
        ServiceRequestQuoteExpiryWithdrawn(request_id=request_id, quote_id="q1", accepted_at=AT - timedelta(hours=1)),
    ]


def test_analytics_stores_every_paid_service_event_without_sending_one_to_its_dlq():
    for data in paid_service_events("r-1"):
        stored, reason = decode_record(as_consumed(data))
        assert reason is None, (data.event_type, reason)
        assert stored.type == data.event_type and stored.request_id == "r-1"
    triaged, _ = decode_record(as_consumed(paid_service_events("r-1")[0]))
    assert triaged.data == {"mode": "onsite", "priority": "P3"}, "the triage facts analytics folds are unchanged"


def test_a_triage_published_before_dispatch_held_existed_reads_as_dispatched_at_once():
    old = ServiceRequestTriaged.model_validate_json(
        '{"request_id": "r", "mode": "onsite", "priority": "P2", "note": null}'
    )
    assert old.dispatch_held is False


def test_money_travels_as_exact_decimal_strings():
    issued = paid_service_events("r-1")[2]
    assert '"total":"60.00"' in issued.model_dump_json() and '"amount":"60.00"' in issued.model_dump_json()
