"""The process-mining exports on histories made with the test builders: the OCEL 2.0 JSON is valid by the
standard's JSON schema and its referential rules, and PM4Py (a test-only dependency: GPL/AGPL) reads the JSON,
the SQLite layout and the XES back with the right numbers of events, objects and traces; no customer name or
phone travels; the JSON streams with flat memory."""

from __future__ import annotations

import io
import json
import sqlite3
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from xml.etree import ElementTree

import jsonschema
import pytest

from services.analytics.exports import (
    _Recent,
    grouped_by_request,
    ocel_json_chunks,
    ocel_sqlite_chunks,
    table_suffix,
    write_ocel_sqlite,
    xes_chunks,
)
from services.analytics.metrics import to_micros
from services.analytics.records import AnalyticsEvent
from services.analytics.tests import builders as ev
from shared.contracts.dispatch import JobCompleted
from shared.contracts.warranty import ClaimSubmitted, PartSwapped, WarrantyChecked

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CUSTOMER_NAME, CUSTOMER_PHONE = "Ann Farmer", "+49 170 5550101"  # what builders.received puts in every request
# Every object type the module's history touches, as the export declares them and PM4Py reads them back.
OBJECT_TYPES_OF_THE_HISTORY = {
    "service_request",
    "job",
    "unit",
    "dealer",
    "service_center",
    "technician",
    "complaint",
    "claim",
    "part",
}

# The constraints of the published OCEL 2.0 JSON schema (ocel-standard.org, 2.0/ocel20-schema-json.json), written
# out here since the schema file carries no licence that lets us vendor it: the four top-level arrays, each
# type's name and attributes, each event's id/type/time, each object's id/type, relationships as objectId +
# qualifier, attribute values as strings and times as RFC 3339 date-times.
_RELATIONSHIPS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["objectId", "qualifier"],
        "properties": {"objectId": {"type": "string"}, "qualifier": {"type": "string"}},
    },
}
_TYPES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "attributes"],
        "properties": {
            "name": {"type": "string"},
            "attributes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"enum": ["string", "time", "integer", "float", "boolean"]},
                    },
                },
            },
        },
    },
}
OCEL2_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["eventTypes", "objectTypes", "events", "objects"],
    "properties": {
        "eventTypes": _TYPES,
        "objectTypes": _TYPES,
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "type", "time"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "time": {"type": "string", "format": "date-time"},
                    "attributes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "value"],
                            "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                        },
                    },
                    "relationships": _RELATIONSHIPS,
                },
            },
        },
        "objects": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "attributes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "value", "time"],
                            "properties": {
                                "name": {"type": "string"},
                                "value": {"type": "string"},
                                "time": {"type": "string", "format": "date-time"},
                            },
                        },
                    },
                    "relationships": _RELATIONSHIPS,
                },
            },
        },
    },
}


def stored(envelope) -> AnalyticsEvent:
    """The row the analytics store keeps of an event, its payload holding the whole data — customer's name and
    phone included, the worst case: the writers must drop them themselves, whatever the row holds."""
    return AnalyticsEvent(
        envelope.id,
        envelope.type,
        getattr_data(envelope, "request_id"),
        getattr_data(envelope, "job_id"),
        to_micros(envelope.time),
        to_micros(envelope.recordedat),
        envelope.sequence,
        {},
        topic=envelope.topic,
        subject=envelope.subject,
        payload=envelope.data_dict(),
    )


def getattr_data(envelope, name: str):
    return envelope.data_dict().get(name)


class History:
    """Requests of two dealers: serviced ones (a failed visit, a part swapped, a claim, a complaint on every
    third), phone-resolved ones; and the objects they must give, counted from the plan."""

    def __init__(self, serviced: int = 6, phone: int = 3) -> None:
        self.envelopes, self.objects, self.requests = [], set(), []
        for i in range(serviced + phone):
            rid, jid, dealer = f"R{i}", f"J{i}", f"D{i % 2}"
            at = T0 + timedelta(hours=i)
            keys = dict(dealer_id=dealer, region="north", product_line="washer")
            received = ev.received(rid, at, **keys)
            serial = received.data_dict()["product"]["serial"]
            self.requests.append(rid)
            self.objects |= {f"service_request:{rid}", f"dealer:{dealer}", f"unit:{serial}"}
            self.envelopes += [
                received,
                ev.stamped(WarrantyChecked(request_id=rid, serial=serial, covered=True, reason="within warranty"), at),
            ]
            if i >= serviced:
                self.envelopes.append(ev.triaged(rid, at + timedelta(minutes=5), mode="phone"))
                continue
            tech, center = f"T{i % 3}", f"C{i % 2}"
            self.objects |= {
                f"job:{jid}",
                f"technician:{tech}",
                f"service_center:{center}",
                "technician:T9",
                "part:P-100",
                f"claim:K{i}",
            }
            self.envelopes += [
                ev.triaged(rid, at + timedelta(minutes=10)),
                ev.job_created(jid, rid, at + timedelta(minutes=10), **keys),
                ev.assigned(jid, rid, at + timedelta(minutes=11), center_id=center, technician_id="T9"),
                ev.assigned(jid, rid, at + timedelta(minutes=12), center_id=center, technician_id=tech),
                ev.accepted(jid, rid, at + timedelta(minutes=20), tech),
                ev.arrived(jid, rid, at + timedelta(hours=2), tech),
                ev.stamped(
                    JobCompleted(
                        job_id=jid,
                        request_id=rid,
                        technician_id=tech,
                        fixed=False,
                        resolution=f"called {CUSTOMER_NAME}, no answer",
                        reason="customer_absent",
                    ),
                    at + timedelta(hours=3),
                ),
                ev.arrived(jid, rid, at + timedelta(days=1), tech),
                ev.stamped(
                    PartSwapped(
                        swap_id=f"S{i}",
                        job_id=jid,
                        request_id=rid,
                        serial=serial,
                        part_number="P-100",
                        part_category="pump",
                        quantity=1,
                        covered=True,
                        reason="in warranty",
                        unit_cost=Decimal("12.50"),
                        currency="EUR",
                        dealer_id=dealer,
                        recorded_by=tech,
                    ),
                    at + timedelta(days=1, minutes=30),
                ),
                ev.completed(jid, rid, at + timedelta(days=1, hours=1), tech, fixed=True),
                ev.revisit(jid, rid, at + timedelta(days=2), 4, 9),
                ev.stamped(
                    ClaimSubmitted(
                        claim_id=f"K{i}",
                        job_id=jid,
                        request_id=rid,
                        serial=serial,
                        dealer_id=dealer,
                        labour_minutes=90,
                        swap_ids=[f"S{i}"],
                        labour_amount=Decimal("60"),
                        parts_amount=Decimal("12.50"),
                        total_amount=Decimal("72.50"),
                        currency="EUR",
                        submitted_by=dealer,
                    ),
                    at + timedelta(days=3),
                ),
            ]
            if i % 3 == 0:
                self.objects.add(f"complaint:C-{i}")
                self.envelopes.append(
                    ev.complaint(at + timedelta(days=2, hours=1), job_id=jid, dealer_id=dealer, complaint_id=f"C-{i}")
                )
        self.rows = [stored(e) for e in self.envelopes]


@pytest.fixture(scope="module")
def history() -> History:
    return History()


def no_customer_data(blob: bytes) -> bool:
    return CUSTOMER_NAME.encode() not in blob and CUSTOMER_PHONE.encode() not in blob


def test_the_ocel_json_is_valid_by_the_standard_and_every_relationship_names_an_object(history):
    document = b"".join(ocel_json_chunks(history.rows, chunk_bytes=512))
    assert no_customer_data(document)
    log = json.loads(document)
    jsonschema.Draft7Validator(OCEL2_JSON_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)
    assert len(log["events"]) == len(history.rows)
    assert {o["id"] for o in log["objects"]} == history.objects
    objects = {o["id"] for o in log["objects"]}
    declared_events = {t["name"]: {a["name"] for a in t["attributes"]} for t in log["eventTypes"]}
    declared_objects = {t["name"]: {a["name"] for a in t["attributes"]} for t in log["objectTypes"]}
    assert set(declared_objects) == OBJECT_TYPES_OF_THE_HISTORY
    for event in log["events"]:
        assert {r["objectId"] for r in event["relationships"]} <= objects
        assert {a["name"] for a in event["attributes"]} <= declared_events[event["type"]]
        assert "recordedat" in {a["name"] for a in event["attributes"]}
    for obj in log["objects"]:
        assert {r["objectId"] for r in obj["relationships"]} <= objects
        assert {a["name"] for a in obj["attributes"]} <= declared_objects[obj["type"]]
    job = next(o for o in log["objects"] if o["id"] == "job:J0")
    assert {
        ("service_request:R0", "request"),
        ("technician:T0", "assigned to"),
        ("technician:T9", "assigned to"),
        ("part:P-100", "part fitted"),
    } <= {(r["objectId"], r["qualifier"]) for r in job["relationships"]}
    complaint = next(o for o in log["objects"] if o["id"] == "complaint:C-0")
    assert {r["objectId"] for r in complaint["relationships"]} >= {"job:J0", "dealer:D0"}
    failed = next(
        e
        for e in log["events"]
        if e["type"] == "job.completed" and {"name": "fixed", "value": "false"} in e["attributes"]
    )
    assert {"name": "reason", "value": "customer_absent"} in failed["attributes"]


@pytest.fixture(scope="module")
def pm4py():
    return pytest.importorskip("pm4py")


def test_pm4py_reads_the_ocel_json_back(history, pm4py, tmp_path):
    path = tmp_path / "export.jsonocel"
    path.write_bytes(b"".join(ocel_json_chunks(history.rows)))
    log = pm4py.read_ocel2_json(str(path))
    assert (len(log.events), len(log.objects)) == (len(history.rows), len(history.objects))
    assert set(log.objects["ocel:type"]) == OBJECT_TYPES_OF_THE_HISTORY
    assert len(log.o2o) > 0 and len(log.relations) >= len(history.rows)


def test_pm4py_reads_the_ocel_sqlite_layout_back(history, pm4py, tmp_path):
    path = tmp_path / "export.sqlite"
    path.write_bytes(b"".join(ocel_sqlite_chunks(history.rows, workdir=str(tmp_path))))
    assert no_customer_data(path.read_bytes())
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {
            "event",
            "object",
            "event_object",
            "object_object",
            "event_map_type",
            "object_map_type",
            "event_JobCompleted",
            "object_ServiceRequest",
        } <= tables
        assert db.execute("SELECT ocel_type_map FROM event_map_type WHERE ocel_type = 'job.completed'").fetchone() == (
            "JobCompleted",
        )
    log = pm4py.read_ocel2_sqlite(str(path))
    assert (len(log.events), len(log.objects)) == (len(history.rows), len(history.objects))
    assert len(log.o2o) > 0


def test_pm4py_reads_the_xes_back_with_one_trace_per_request(history, pm4py, tmp_path):
    path = tmp_path / "export.xes"
    path.write_bytes(b"".join(xes_chunks(grouped_by_request(history.rows), chunk_bytes=1024)))
    assert no_customer_data(path.read_bytes())
    frame = pm4py.read_xes(str(path))
    assert frame["case:concept:name"].nunique() == len(history.requests)
    assert len(frame) == len(history.rows)  # every event belongs to a request (complaints through their job)
    assert set(frame["lifecycle:transition"]) == {"complete"}
    assert {"T0", "T9", "hotline", "warranty"} <= set(frame["org:resource"])
    trace = frame[frame["case:concept:name"] == "R0"].sort_values("time:timestamp")
    assert list(trace["concept:name"])[:3] == [
        "service_request.received",
        "warranty.checked",
        "service_request.triaged",
    ]
    log = ElementTree.fromstring(path.read_bytes())
    assert log.get("xes.version") == "1849-2016"


def test_the_layout_names_a_table_per_type():
    assert [table_suffix(t) for t in ("job.completed", "service_request", "revisit.done")] == [
        "JobCompleted",
        "ServiceRequest",
        "RevisitDone",
    ]


def synthetic_rows(requests: int):
    """A long history made on the fly (never held in memory as a whole)."""
    for i in range(requests):
        rid, jid, t = f"req-{i:07d}", f"job-{i:07d}", 1_770_000_000_000_000 + i * 60_000_000
        yield AnalyticsEvent(
            f"{rid}-0",
            "service_request.received",
            rid,
            None,
            t,
            t,
            1,
            {"dealer_id": f"D{i % 50}", "region": "north", "product_line": "washer"},
        )
        for step, event_type in enumerate(("job.assigned", "job.accepted", "job.arrived", "job.completed")):
            at = t + (step + 1) * 600_000_000
            yield AnalyticsEvent(
                f"{rid}-{step + 1}",
                event_type,
                rid,
                jid,
                at,
                at,
                step + 2,
                {"technician_id": f"T{i % 400}", "center_id": f"C{i % 40}", "fixed": True},
            )


def test_the_json_export_streams_in_flat_memory(tmp_path, monkeypatch):
    # The one bounded cache, made small enough to show its bound. Ten times the requests and at most twice the
    # peak: 1,500 requests are enough for what flat memory rules out (keeping the output, the events or every
    # object seen: 3 to 5 MB against a bound of ~2) and cost half of 3,000 under tracemalloc, which slows every
    # allocation some eightfold (this test was the fast tier's most expensive).
    monkeypatch.setattr(_Recent, "LIMIT", 500)

    def peak_while_streaming(requests: int) -> tuple[int, int]:
        tracemalloc.start()
        try:
            size = sum(len(chunk) for chunk in ocel_json_chunks(synthetic_rows(requests), workdir=str(tmp_path)))
            return size, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small_size, small_peak = peak_while_streaming(150)
    large_size, large_peak = peak_while_streaming(1_500)
    assert large_size > 9 * small_size
    assert large_peak < 2 * small_peak + (1 << 20), (small_peak, large_peak)


def test_an_export_of_nothing_is_a_valid_empty_log(pm4py, tmp_path):
    log = json.load(io.BytesIO(b"".join(ocel_json_chunks([]))))
    jsonschema.validate(log, OCEL2_JSON_SCHEMA)
    assert (log["events"], log["objects"]) == ([], [])
    assert write_ocel_sqlite([], str(tmp_path / "empty.sqlite")) == 0
    assert b"".join(xes_chunks([])).endswith(b"</log>\n")
