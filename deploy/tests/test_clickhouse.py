"""deploy/clickhouse's DDL on a real ClickHouse engine (chDB, in process): CloudEvents records as the Kafka
engine hands them over become one event row each (a duplicate merges away, no customer name or phone), and the
facts `as_of` several moments equal analytics' own reference fold of the events recorded by then.

chDB runs the DDL as written except the Kafka engine table itself, which needs a broker the engine reaches on
its own: a table with the same columns (`raw`, `_topic`, `_headers`) stands in for it, and the records are
inserted into it as the Kafka engine would deliver them."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.analytics.facts import fold_all
from services.analytics.metrics import to_micros
from services.analytics.records import analytics_event
from services.analytics.tests import builders as ev
from shared.contracts.base import REGISTRY
from shared.messaging.cloudevents import to_record

DDL = Path(__file__).resolve().parents[1] / "clickhouse"
STAND_IN = (
    "CREATE TABLE IF NOT EXISTS servicetrail_events_kafka (raw String, _topic String, "
    "_headers Nested(name String, value String)) ENGINE = Null"
)
FIELDS = [
    "received_at",
    "dealer_key",
    "region",
    "triaged_at",
    "phone_triaged",
    "escalated",
    "cancelled_at",
    "first_assigned_at",
    "first_arrived_at",
    "resolved_at",
    "center_id",
    "technician_id",
    "jobs_completed",
    "jobs_first_fixed",
    "jobs_sla_met",
    "complaints",
]
TIMES = {"received_at", "triaged_at", "cancelled_at", "first_assigned_at", "first_arrived_at", "resolved_at"}


def statements(text: str) -> list[str]:
    text = re.sub(r"--[^\n]*", "", text)
    return [s.strip() for s in text.split(";") if s.strip()]


def history(t0: datetime) -> list:
    keys = dict(dealer_id="D1", region="north", product_line="baler")
    r1, j1, r2, j2, r3 = (str(uuid.uuid4()) for _ in range(5))
    due = t0 + timedelta(hours=4)
    return [
        # a visit synced a day late restates resolution and SLA; the breach is withdrawn two days later
        ev.received(r1, t0, **keys, recorded_at=t0),
        ev.triaged(r1, t0 + timedelta(minutes=10), recorded_at=t0 + timedelta(minutes=10)),
        ev.job_created(j1, r1, t0 + timedelta(minutes=10), **keys, recorded_at=t0 + timedelta(minutes=10)),
        ev.assigned(
            j1,
            r1,
            t0 + timedelta(minutes=11),
            center_id="C1",
            technician_id="T1",
            recorded_at=t0 + timedelta(minutes=11),
        ),
        ev.assigned(
            j1,
            r1,
            t0 + timedelta(minutes=20),
            center_id="C2",
            technician_id="T2",
            recorded_at=t0 + timedelta(minutes=20),
        ),
        ev.breached(j1, r1, due, recorded_at=due),
        ev.completed(j1, r1, t0 + timedelta(hours=5), "T2", fixed=True, recorded_at=t0 + timedelta(days=1)),
        ev.arrived(j1, r1, t0 + timedelta(hours=3), "T2", recorded_at=t0 + timedelta(days=2)),
        ev.breach_withdrawn(j1, r1, due, t0 + timedelta(days=2), recorded_at=t0 + timedelta(days=2, seconds=1)),
        ev.complaint(t0 + timedelta(hours=6), job_id=j1, recorded_at=t0 + timedelta(hours=6)),
        # a phone resolution with an escalation; a direct customer; a first visit that did not fix the unit
        ev.received(
            r2,
            t0 + timedelta(hours=1),
            dealer_id=None,
            region="south",
            product_line="mower",
            recorded_at=t0 + timedelta(hours=1),
        ),
        ev.escalated(r2, t0 + timedelta(hours=1, minutes=2), recorded_at=t0 + timedelta(hours=1, minutes=2)),
        ev.triaged(
            r2, t0 + timedelta(hours=1, minutes=5), mode="phone", recorded_at=t0 + timedelta(hours=1, minutes=5)
        ),
        ev.received(r3, t0 + timedelta(hours=2), **keys, recorded_at=t0 + timedelta(hours=2)),
        ev.job_created(j2, r3, t0 + timedelta(hours=2), **keys, recorded_at=t0 + timedelta(hours=2)),
        ev.completed(j2, r3, t0 + timedelta(hours=4), "T3", fixed=False, recorded_at=t0 + timedelta(hours=4)),
        ev.completed(j2, r3, t0 + timedelta(hours=9), "T3", fixed=True, recorded_at=t0 + timedelta(hours=9)),
        ev.cancelled(r3, t0 + timedelta(hours=10), recorded_at=t0 + timedelta(hours=10)),
        ev.complaint(t0 + timedelta(hours=3), request_id=r3, recorded_at=t0 + timedelta(hours=3)),
    ]


def kafka_row(envelope) -> str:
    topic, _, value, headers = to_record(envelope)
    return json.dumps(
        {
            "raw": value.decode(),
            "_topic": topic,
            "_headers.name": [k for k, _ in headers],
            "_headers.value": [v.decode() for _, v in headers],
        }
    )


def moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.fixture
def chdb_session():
    """chDB's session module, imported by the test that uses it: the engine is a library of some hundreds of MB,
    ~0.4 s of CPU to load, which every pytest worker would otherwise pay at collection."""
    return pytest.importorskip("chdb.session")


def test_the_clickhouse_ddl_keeps_every_event_once_and_its_facts_as_of_any_moment_equal_the_reference(
    tmp_path, chdb_session
):
    session = chdb_session.Session(str(tmp_path / "chdb"))
    try:
        events_ddl = (DDL / "01_events.sql").read_text()
        kafka_table = re.search(r"CREATE TABLE IF NOT EXISTS servicetrail_events_kafka.*?;", events_ddl, re.S)
        assert "ENGINE = Kafka" in kafka_table.group(0) and "kafka_format = 'RawBLOB'" in kafka_table.group(0)
        for statement in statements(events_ddl.replace(kafka_table.group(0), STAND_IN + ";")):
            session.query(statement)
        for statement in statements((DDL / "02_facts.sql").read_text()):
            session.query(statement)

        t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
        envelopes = history(t0)
        rows = [kafka_row(e) for e in envelopes] + [kafka_row(envelopes[0])]  # one record delivered twice
        session.query("INSERT INTO servicetrail_events_kafka FORMAT JSONEachRow\n" + "\n".join(rows))

        stored = session.query(
            "SELECT count(), uniqExact(event_id), countIf(position(data, 'Ann Farmer') > 0 "
            "OR position(data, '5550101') > 0) FROM servicetrail_events FINAL",
            "CSV",
        )
        assert str(stored).strip() == f"{len(envelopes)},{len(envelopes)},0"

        events = [
            analytics_event(e, REGISTRY.get(e.type, e.schema_version).model_validate_json(e.data)) for e in envelopes
        ]
        columns = ", ".join(f"toUnixTimestamp64Micro({f})" if f in TIMES else f for f in FIELDS)
        for at in (
            t0 + timedelta(hours=3),
            t0 + timedelta(hours=12),
            t0 + timedelta(days=1, hours=1),
            t0 + timedelta(days=3),
        ):
            result = session.query(
                f"SELECT request_id, {columns} FROM servicetrail_request_facts("
                f"as_of = '{moment(at)}') ORDER BY request_id",
                "JSONCompact",
            )
            got = {row[0]: row[1:] for row in json.loads(str(result))["data"]}
            requests, _ = fold_all([e for e in events if e.recorded_at <= to_micros(at)])
            expected = {f.request_id: [_plain(getattr(f, name)) for name in FIELDS] for f in requests}
            assert {k: [_plain(v) for v in row] for k, row in got.items()} == expected, at
    finally:
        session.close()


def _plain(value):
    """ClickHouse's JSON writes 64-bit integers as strings and booleans as 0/1."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value
