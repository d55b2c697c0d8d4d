"""CloudEvents binary mode: what we put in headers comes back out; what is not a CloudEvent is refused."""

from datetime import UTC, datetime

import pytest

from shared.events import EventEnvelope
from shared.messaging.cloudevents import UnreadableEvent, from_record, to_record

EVENT = EventEnvelope(
    id="6f2c1f7e-0000-4000-8000-000000000001",
    source="intake",
    type="service_request.triaged",
    subject="req-1",
    time=datetime(2026, 3, 1, 8, 30, tzinfo=UTC),
    dataschema="service_request.triaged/1",
    sequence=2,
    recordedat=datetime(2026, 3, 1, 8, 31, 5, 250000, tzinfo=UTC),
    correlationid="corr-1",
    causationid="cause-1",
    data='{"request_id":"req-1"}',
    topic="intake.events",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    actor="user:clerk-7;dealer=D1",
)


def test_a_stored_event_becomes_a_binary_mode_record_keyed_by_its_subject():
    topic, key, value, headers = to_record(EVENT)
    names = dict(headers)
    assert (topic, key, value) == ("intake.events", b"req-1", b'{"request_id":"req-1"}')
    assert names["ce_specversion"] == b"1.0"
    assert names["ce_time"] == b"2026-03-01T08:30:00Z"
    assert names["ce_recordedat"] == b"2026-03-01T08:31:05.250000Z"
    assert names["ce_sequence"] == b"2"
    assert names["content-type"] == b"application/json"
    assert names["traceparent"].startswith(b"00-")
    assert names["ce_actor"] == b"user:clerk-7;dealer=D1"


def test_a_record_that_names_no_actor_reads_as_caused_by_an_unknown_system():
    topic, key, value, headers = to_record(EVENT)
    older = [(name, raw) for name, raw in headers if name != "ce_actor"]
    assert from_record(topic, key, value, older).actor == "system:unknown"


def test_a_record_read_back_equals_the_event_that_was_written():
    topic, key, value, headers = to_record(EVENT)
    assert from_record(topic, key, value, headers) == EVENT


@pytest.mark.parametrize(
    "headers, value, reason",
    [
        ([], b"{}", "missing CloudEvents headers"),
        (
            [
                ("ce_specversion", b"0.3"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"t"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
            b"{}",
            "specversion",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"t"),
                ("ce_time", b"yesterday"),
            ],
            b"{}",
            "RFC 3339",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"t"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
            None,
            "no value",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"\xff"),
                ("ce_source", b"s"),
                ("ce_type", b"t"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
            b"{}",
            "UTF-8",
        ),
    ],
)
def test_a_record_that_is_not_a_readable_cloudevent_is_refused_with_its_reason(headers, value, reason):
    with pytest.raises(UnreadableEvent, match=reason):
        from_record("intake.events", b"k", value, headers)
