"""Quotes and part requests in the process-mining exports: in OCEL 2.0 each quote event names its service
request, each part-request event its request, job, technician, dealer and the part (qualified by what happened
to it), and the job links to the part; in XES they sit in their request's trace, the customer as the resource
of a decision and the warehouse of a shipment — and pm4py reads both back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from services.analytics.exports import grouped_by_request, ocel_json_chunks, xes_chunks
from services.analytics.tests import builders as ev
from services.analytics.tests.test_exports import OCEL2_JSON_SCHEMA, no_customer_data, stored
from shared.contracts.warranty import PartRequestShipped

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def paid_history():
    at = {m: T0 + timedelta(minutes=m) for m in range(0, 2000, 5)}
    keys = dict(dealer_id="D7", region="north", product_line="washer")
    part = dict(job_id="J7", request_id="R7", part_request_id="PR7", part_number="P-PUMP")
    envelopes = [
        ev.received("R7", T0, **keys),
        ev.triaged("R7", at[10]),
        ev.quote_required("R7", at[10]),
        ev.quote_issued("R7", "Q7", at[30], "250.00"),
        ev.quote_accepted("R7", "Q7", at[240], "250.00"),
        ev.job_created("J7", "R7", at[240], **keys),
        ev.assigned("J7", "R7", at[250], center_id="C7", technician_id="T7"),
        ev.part_backordered("J7", "R7", "PR7", "P-PUMP", at[300]),
        ev.part_reserved("J7", "R7", "PR7", "P-PUMP", at[900], kind="warehouse"),
        ev.stamped(
            PartRequestShipped(
                **part, quantity=1, from_location_id="warehouse-1", to_location_id="van-1", shipped_by="W1"
            ),
            at[1000],
            source="warranty",
        ),
        ev.part_received("J7", "R7", "PR7", "P-PUMP", at[1400]),
    ]
    return [stored(e) for e in envelopes]


def test_quote_and_part_request_events_name_their_request_job_and_part_in_the_ocel_log():
    document = b"".join(ocel_json_chunks(paid_history(), chunk_bytes=512))
    assert no_customer_data(document)
    log = json.loads(document)
    jsonschema.Draft7Validator(OCEL2_JSON_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)
    related = {e["type"]: {(r["objectId"], r["qualifier"]) for r in e["relationships"]} for e in log["events"]}
    for quote_event in ("service_request.quote_issued", "service_request.quote_accepted"):
        assert related[quote_event] == {("service_request:R7", "request")}
    assert related["part_request.backordered"] >= {
        ("service_request:R7", "request"),
        ("job:J7", "job"),
        ("part:P-PUMP", "part backordered"),
    }
    assert ("part:P-PUMP", "part reserved") in related["part_request.reserved"]
    assert ("part:P-PUMP", "part shipped") in related["part_request.shipped"]
    assert ("part:P-PUMP", "part received") in related["part_request.received"]
    issued = next(e for e in log["events"] if e["type"] == "service_request.quote_issued")
    assert {"name": "quote_id", "value": "Q7"} in issued["attributes"]
    assert {"name": "total", "value": "250.00"} in issued["attributes"]
    job = next(o for o in log["objects"] if o["id"] == "job:J7")
    assert ("part:P-PUMP", "part received") in {(r["objectId"], r["qualifier"]) for r in job["relationships"]}
    assert {o["type"] for o in log["objects"]} >= {"service_request", "job", "part", "technician", "dealer"}


def test_quote_and_part_request_events_sit_in_their_requests_xes_trace_with_who_acted(tmp_path):
    pm4py = pytest.importorskip("pm4py")
    path = tmp_path / "paid.xes"
    path.write_bytes(b"".join(xes_chunks(grouped_by_request(paid_history()))))
    frame = pm4py.read_xes(str(path)).sort_values("time:timestamp")
    assert set(frame["case:concept:name"]) == {"R7"}
    resources = dict(zip(frame["concept:name"], frame["org:resource"]))
    assert resources["service_request.quote_issued"] == "hotline"
    assert resources["service_request.quote_accepted"] == "customer"
    assert resources["part_request.backordered"] == "warehouse"  # the wait is the warehouse's
    assert resources["part_request.shipped"] == "warehouse"
    assert list(frame["concept:name"])[-1] == "part_request.received"
