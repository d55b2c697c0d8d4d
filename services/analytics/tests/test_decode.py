"""Reading a record: the fast reading (no `EventEnvelope` built) gives exactly what the reference reading gives —
the same stored event, or the same reason for the DLQ — on every record of a generated history and on broken
copies of them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from deploy.demo_year import records
from services.analytics.replay import _decode_by_envelope, _decode_plain, decode_record
from shared.contracts.base import REGISTRY


def history(requests: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic=t, key=k, value=v, headers=h, offset=0) for t, k, v, h in records(requests, seed=7)]


def test_every_record_of_a_generated_history_is_read_as_the_reference_reads_it():
    read = history(80)
    assert len({dict(r.headers)["ce_type"] for r in read}) >= 12  # the history has most types of the four topics
    for record in read:
        event, reason = _decode_by_envelope(record)
        assert event is not None, reason
        assert _decode_plain(record, REGISTRY) == event
        assert decode_record(record) == (event, None)


def _without(name: str):
    return lambda r: SimpleNamespace(**{**vars(r), "headers": [(n, v) for n, v in r.headers if n != name]})


def _header(name: str, value: bytes):
    return lambda r: SimpleNamespace(**{**vars(r), "headers": [*_without(name)(r).headers, (name, value)]})


def _value(value: bytes | None):
    return lambda r: SimpleNamespace(**{**vars(r), "value": value})


BROKEN = {
    "no id": _without("ce_id"),
    "an empty type": _header("ce_type", b""),
    "no source": _without("ce_source"),
    "another specversion": _header("ce_specversion", b"0.3"),
    "no specversion": _without("ce_specversion"),
    "a time that is not RFC 3339": _header("ce_time", b"yesterday"),
    "a recordedat that is not a time": _header("ce_recordedat", b"2026-13-45T00:00:00Z"),
    "a sequence that is not a number": _header("ce_sequence", b"seven"),
    "a header that is not UTF-8": _header("ce_subject", b"\xff\xfe"),
    "a value that is not UTF-8": _value(b"\xff{}"),
    "no value": _value(None),
    "data that is not its contract": _value(b'{"request_id": 5}'),
    "data that is not JSON": _value(b"{"),
    "an unknown schema version": _header("ce_dataschema", b"https://example.test/schemas/x/99"),
    "a schema version that is not a number": _header("ce_dataschema", b"x/one"),
    "a schema with no version": _header("ce_dataschema", b"noslash"),
    "no dataschema (version 1)": _without("ce_dataschema"),
    "no subject (the key is)": _without("ce_subject"),
    "no recordedat (the time is)": _without("ce_recordedat"),
    "an offset time": _header("ce_time", b"2026-03-01T10:00:00.250+02:00"),
}


@pytest.mark.parametrize("broken", list(BROKEN), ids=list(BROKEN))
def test_a_broken_or_unusual_record_is_read_as_the_reference_reads_it(broken):
    by_type = {dict(r.headers)["ce_type"]: r for r in history(20)}
    for record in by_type.values():
        changed = BROKEN[broken](record)
        assert decode_record(changed) == _decode_by_envelope(changed)
