"""CloudEvents 1.0, Kafka protocol binding, binary content mode: value = data JSON, attributes = headers,
key = subject so that one aggregate's events stay in order on one partition."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from shared.clock import as_utc, rfc3339
from shared.events import UNKNOWN_ACTOR, EventEnvelope

Headers = list[tuple[str, bytes]]

_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")


class UnreadableEvent(Exception):
    """A record that is not a CloudEvent we can read; the reason goes to the DLQ."""


_SPECVERSION = ("ce_specversion", b"1.0")
_CONTENT_TYPE = ("content-type", b"application/json")


def binary_headers(
    *,
    id: str,
    source: bytes,
    type: str,
    subject: str,
    time: str,
    dataschema: str,
    sequence: int,
    recordedat: str,
    correlationid: str,
    causationid: str,
    traceparent: str | None,
    actor: str,
) -> Headers:
    """The CloudEvents headers of one event from its attributes as stored (times already in RFC 3339): what
    `to_record` sends, and what the relay builds straight from an outbox row, without an envelope between.
    `actor` (who caused it, `shared.events.ActorId`'s text) travels as the extension header `ce_actor`."""
    headers: Headers = [
        _SPECVERSION,
        ("ce_id", id.encode()),
        ("ce_source", source),
        ("ce_type", type.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", time.encode()),
        ("ce_dataschema", dataschema.encode()),
        _CONTENT_TYPE,
        ("ce_sequence", str(sequence).encode()),
        ("ce_recordedat", recordedat.encode()),
        ("ce_correlationid", correlationid.encode()),
        ("ce_causationid", causationid.encode()),
        ("ce_actor", actor.encode()),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers


def to_record(event: EventEnvelope) -> tuple[str, bytes, bytes, Headers]:
    """(topic, key, value, headers) of a stored event."""
    headers = binary_headers(
        id=event.id,
        source=event.source.encode(),
        type=event.type,
        subject=event.subject,
        time=rfc3339(event.time),
        dataschema=event.dataschema,
        sequence=event.sequence,
        recordedat=rfc3339(event.recordedat),
        correlationid=event.correlationid,
        causationid=event.causationid,
        traceparent=event.traceparent,
        actor=event.actor,
    )
    return event.topic, event.subject.encode(), event.data.encode(), headers


def _parse_time(name: str, raw: str) -> datetime:
    try:
        # Python 3.11's fromisoformat reads RFC 3339's "Z" itself (as datetime.UTC): no replace, no conversion.
        parsed = datetime.fromisoformat(raw)
        return parsed if parsed.tzinfo is UTC else as_utc(parsed)
    except ValueError as exc:
        raise UnreadableEvent(f"header {name} is not an RFC 3339 time: {raw!r}") from exc


def from_record(
    topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> EventEnvelope:
    """Read a binary-mode CloudEvent; raise UnreadableEvent with the reason when it is not one."""
    try:
        attrs = {name: raw.decode("utf-8") for name, raw in headers}
    except UnicodeDecodeError as exc:
        raise UnreadableEvent("a CloudEvents header is not UTF-8") from exc
    missing = [name for name in _REQUIRED if not attrs.get(name)]
    if missing:
        raise UnreadableEvent(f"missing CloudEvents headers: {', '.join(missing)}")
    if attrs["ce_specversion"] != "1.0":
        raise UnreadableEvent(f"unsupported CloudEvents specversion {attrs['ce_specversion']!r}")
    if value is None:
        raise UnreadableEvent("the record has no value (data)")
    try:
        data = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableEvent("the record value is not UTF-8 JSON") from exc
    try:
        sequence = int(attrs.get("ce_sequence", "0"))
    except ValueError as exc:
        raise UnreadableEvent("header ce_sequence is not an integer") from exc
    time = _parse_time("ce_time", attrs["ce_time"])
    subject = attrs.get("ce_subject") or (key.decode("utf-8", "replace") if key else "")
    return EventEnvelope(
        id=attrs["ce_id"],
        source=attrs["ce_source"],
        type=attrs["ce_type"],
        subject=subject,
        time=time,
        dataschema=attrs.get("ce_dataschema", f"{attrs['ce_type']}/1"),
        sequence=sequence,
        recordedat=_parse_time("ce_recordedat", attrs["ce_recordedat"]) if attrs.get("ce_recordedat") else time,
        correlationid=attrs.get("ce_correlationid", attrs["ce_id"]),
        causationid=attrs.get("ce_causationid", attrs["ce_id"]),
        data=data,
        topic=topic,
        traceparent=attrs.get("traceparent"),
        # A record from before actors were kept (or from a producer that keeps none) names nobody.
        actor=attrs.get("ce_actor") or UNKNOWN_ACTOR,
    )
