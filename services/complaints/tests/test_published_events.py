"""Each complaints command publishes exactly the right CloudEvents, in order per complaint, through the outbox;
a refused one publishes nothing. Rebuilt from the event store, the read model equals the live one."""

import asyncio
import json
import uuid

from sqlalchemy import select

from services.complaints.read_model import complaints as complaint_rows
from services.complaints.read_model import rebuild
from services.complaints.tests.conftest import known_case
from shared.contracts.topics import COMPLAINTS
from shared.eventstore.store import EventStore
from shared.testing.app import settled
from shared.testing.kafka import collect, headers_of, subject_is


async def test_commands_publish_their_cloudevents_in_order_carrying_the_request_and_job(complaints, event_bus):
    request_id, job_id = await known_case(complaints, event_bus, dealer_id="DP")
    correlation = str(uuid.uuid4())
    created = await complaints.open(job_id=job_id, headers={**complaints.agent, "X-Correlation-Id": correlation})
    complaint_id = created.json()["id"]
    for action, body in [
        ("acknowledge", None),
        ("resolve", {"resolution": "apologised, refunded"}),
        ("close", {"customer_confirmed": False}),
    ]:
        assert (await complaints.act(complaint_id, action, body)).status_code == 200
    assert (await complaints.act(complaint_id, "resolve", {"resolution": "again"})).status_code == 409

    await settled(complaints.app)
    records = await collect(event_bus, COMPLAINTS, subject_is(complaint_id), expected=4)
    headers = [headers_of(r) for r in records]
    assert [h["ce_type"] for h in headers] == [
        "complaint.opened",
        "complaint.acknowledged",
        "complaint.resolved",
        "complaint.closed",
    ]
    assert [int(h["ce_sequence"]) for h in headers] == [1, 2, 3, 4]
    assert len({r.partition for r in records}) == 1
    assert all(h["ce_source"] == "complaints" and h["ce_subject"] == complaint_id for h in headers)
    assert headers[0]["ce_correlationid"] == headers[0]["ce_causationid"] == correlation
    data = [json.loads(r.value) for r in records]
    assert all((d["complaint_id"], d["request_id"], d["job_id"]) == (complaint_id, request_id, job_id) for d in data)
    assert {k: data[0][k] for k in ("dealer_id", "category", "severity", "source", "level")} == {
        "dealer_id": "DP",
        "category": "delay",
        "severity": "general",
        "source": "hotline",
        "level": 1,
    }
    assert data[0]["ack_due"] == created.json()["ack_due"] and data[0]["resolve_due"] == created.json()["resolve_due"]
    assert data[3]["customer_confirmed"] is False


async def test_two_concurrent_acknowledgements_one_wins_and_the_other_is_a_409(complaints):
    for _ in range(3):
        complaint_id = (await complaints.open()).json()["id"]
        results = await asyncio.gather(
            complaints.act(complaint_id, "acknowledge", {"note": "mine"}),
            complaints.act(complaint_id, "acknowledge", {"note": "no, mine"}),
        )
        assert sorted(r.status_code for r in results) == [200, 409]
        assert await complaints.stored_types(complaint_id) == ["complaint.opened", "complaint.acknowledged"]


async def test_a_read_model_rebuilt_from_the_event_store_equals_the_live_one(complaints):
    ids = [(await complaints.open(severity=severity)).json()["id"] for severity in ("general", "serious") * 2]
    await complaints.act(ids[0], "acknowledge")
    await complaints.act(ids[0], "wait-on-customer", {"reason": "needs photos"})
    await complaints.act(ids[1], "resolve", {"resolution": "done"})
    await complaints.act(ids[1], "close", {"customer_confirmed": True})
    await complaints.act(ids[1], "reopen", {"reason": "appeal"})
    await complaints.act(ids[2], "escalate", {"reason": "press"})
    db = complaints.app.state.runtime.db

    async def snapshot():
        async with db.read() as conn:
            rows = (await conn.execute(select(complaint_rows).order_by(complaint_rows.c.complaint_id))).all()
        return [{**row._asdict(), "view": json.loads(row.view)} for row in rows]

    live = await snapshot()
    assert await rebuild(db, EventStore(source="complaints")) == len(live) >= 4
    assert await snapshot() == live
