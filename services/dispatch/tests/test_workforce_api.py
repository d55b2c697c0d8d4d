"""Service centers and technicians over HTTP (design.md, dispatch :8002), on a real database and Kafka."""

import json
import uuid

from sqlalchemy import func, select

from shared.contracts.topics import DISPATCH
from shared.eventstore.tables import events, outbox
from shared.testing.app import settled
from shared.testing.kafka import collect, headers_of, subject_is


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def event_count(dispatch) -> tuple[int, int]:
    async with dispatch.app.state.runtime.db.read() as conn:
        stored = (await conn.execute(select(func.count()).select_from(events))).scalar_one()
        due = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return stored, due


async def test_a_dispatcher_registers_a_center_and_a_technician_and_reads_them_back(dispatch):
    created = await dispatch.center("C-N1", region="north", kind="authorized_dealer", dealer_id="D1")
    assert created.status_code == 201
    assert created.headers["location"] == "/v1/service-centers/C-N1"
    assert created.json() == {
        "id": "C-N1",
        "name": "Center C-N1",
        "region": "north",
        "kind": "authorized_dealer",
        "dealer_id": "D1",
        "version": 1,
    }
    technician = await dispatch.technician_in("T-1", "C-N1", skills=["washer", " tractor ", "washer"])
    assert technician.status_code == 201
    assert technician.json() == {
        "id": "T-1",
        "center_id": "C-N1",
        "name": "Tech T-1",
        "skills": ["tractor", "washer"],
        "active": True,
        "version": 1,
    }
    assert (await dispatch.get_json("/v1/service-centers/C-N1", dispatch.auth("agent"))) == created.json()
    assert (await dispatch.get_json("/v1/technicians/T-1", dispatch.auth("analyst"))) == technician.json()
    assert (await dispatch.get_json("/v1/technicians/T-1", dispatch.technician("T-1")))["id"] == "T-1"


async def test_center_and_technician_events_reach_the_topic_keyed_by_a_typed_stream(dispatch, event_bus):
    center_id, technician_id = unique("C"), unique("T")
    await dispatch.center(center_id)
    await dispatch.technician_in(technician_id, center_id)
    await dispatch.client.patch(f"/v1/technicians/{technician_id}", json={"active": False}, headers=dispatch.dispatcher)
    await settled(dispatch.app)
    records = await collect(
        event_bus, DISPATCH, subject_is(f"center:{center_id}", f"technician:{technician_id}"), expected=3
    )
    assert [headers_of(r)["ce_type"] for r in records if r.key.startswith(b"technician:")] == [
        "technician.registered",
        "technician.updated",
    ]
    updated = next(r for r in records if headers_of(r)["ce_type"] == "technician.updated")
    assert json.loads(updated.value) == {
        "technician_id": technician_id,
        "center_id": center_id,
        "name": f"Tech {technician_id}",
        "skills": ["tractor"],
        "active": False,
    }
    assert headers_of(updated)["ce_subject"] == f"technician:{technician_id}"


async def test_lists_filter_and_page_with_a_cursor(dispatch):
    for i in range(5):
        await dispatch.center(f"C{i}", region="north" if i % 2 else "south")
    for i in range(4):
        await dispatch.technician_in(f"T{i}", "C1", skills=["tractor"] if i < 3 else ["washer"], active=i != 0)
    seen, cursor = [], None
    while True:
        page = await dispatch.get_json("/v1/service-centers?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["C0", "C1", "C2", "C3", "C4"]
    north = await dispatch.get_json("/v1/service-centers?region=north")
    assert [c["id"] for c in north["items"]] == ["C1", "C3"] and north["next_cursor"] is None
    skilled = await dispatch.get_json("/v1/technicians?skill=tractor&active=true&center_id=C1")
    assert [t["id"] for t in skilled["items"]] == ["T1", "T2"]
    bad = await dispatch.client.get("/v1/technicians?cursor=not-a-cursor", headers=dispatch.dispatcher)
    assert bad.status_code == 400 and bad.json()["type"] == "/problems/invalid-cursor"


async def test_a_technician_of_an_unknown_center_is_refused_and_nothing_is_written(dispatch):
    before = await event_count(dispatch)
    response = await dispatch.technician_in("T-ghost", "C-nowhere")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"] == [{"field": "center_id", "reason": "service center C-nowhere does not exist"}]
    assert (await dispatch.client.get("/v1/technicians/T-ghost", headers=dispatch.dispatcher)).status_code == 404
    assert await event_count(dispatch) == before


async def test_an_id_registered_twice_is_a_conflict_naming_it_and_changes_nothing(dispatch):
    await dispatch.center("C1", region="north")
    again = await dispatch.center("C1", region="south")
    assert again.status_code == 409 and again.json()["existing_id"] == "C1"
    assert (await dispatch.get_json("/v1/service-centers/C1"))["region"] == "north"
    await dispatch.technician_in("T1", "C1")
    assert (await dispatch.technician_in("T1", "C1", skills=["washer"])).status_code == 409
    assert (await dispatch.get_json("/v1/technicians/T1"))["skills"] == ["tractor"]


async def test_bad_reference_data_is_refused_with_the_offending_field(dispatch):
    dealerless = await dispatch.center("C-AD", kind="authorized_dealer")
    assert dealerless.status_code == 422 and dealerless.json()["errors"][0]["field"] == "dealer_id"
    bad_id = await dispatch.client.post(
        "/v1/service-centers",
        headers=dispatch.dispatcher,
        json={"id": "has space", "name": "x", "region": "north", "kind": "branch"},
    )
    assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["field"] == "id"
    bad_kind = await dispatch.client.post(
        "/v1/service-centers",
        headers=dispatch.dispatcher,
        json={"id": "C9", "name": "x", "region": "north", "kind": "garage"},
    )
    assert bad_kind.status_code == 422 and bad_kind.json()["errors"][0]["field"] == "kind"
    assert (await dispatch.client.get("/v1/service-centers/C9", headers=dispatch.dispatcher)).status_code == 404


async def test_a_dispatcher_updates_a_technician_and_bad_updates_change_nothing(dispatch):
    await dispatch.center("C1")
    await dispatch.center("C2", region="south")
    await dispatch.technician_in("T1", "C1")
    url = "/v1/technicians/T1"
    moved = await dispatch.client.patch(
        url, json={"center_id": "C2", "skills": ["washer"]}, headers=dispatch.dispatcher
    )
    assert moved.status_code == 200
    assert (moved.json()["center_id"], moved.json()["skills"], moved.json()["version"]) == ("C2", ["washer"], 2)
    unknown = await dispatch.client.patch(url, json={"center_id": "C-none"}, headers=dispatch.dispatcher)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "center_id"
    nulled = await dispatch.client.patch(url, json={"name": None}, headers=dispatch.dispatcher)
    assert nulled.status_code == 422 and "may not be null: name" in nulled.json()["detail"]
    same = await dispatch.client.patch(url, json={"active": True}, headers=dispatch.dispatcher)
    assert same.json()["version"] == 2, "an update that changes nothing records nothing"
    assert (
        await dispatch.client.patch("/v1/technicians/T-none", json={"active": False}, headers=dispatch.dispatcher)
    ).status_code == 404
    center = await dispatch.client.patch("/v1/service-centers/C2", json={"region": "east"}, headers=dispatch.dispatcher)
    assert center.status_code == 200 and center.json()["region"] == "east"


async def test_only_dispatchers_manage_reference_data_and_a_technician_reads_only_their_own_record(dispatch):
    await dispatch.center("C1")
    await dispatch.technician_in("T1", "C1")
    await dispatch.technician_in("T2", "C1")
    body = {"id": "C2", "name": "x", "region": "north", "kind": "branch"}
    assert (await dispatch.client.post("/v1/service-centers", json=body)).status_code == 401
    agent = await dispatch.client.post("/v1/service-centers", json=body, headers=dispatch.auth("agent"))
    assert agent.status_code == 403 and "dispatcher" in agent.json()["detail"]
    t1 = dispatch.technician("T1")
    assert (await dispatch.client.get("/v1/technicians/T2", headers=t1)).status_code == 404
    assert (await dispatch.client.get("/v1/technicians", headers=t1)).status_code == 403
    dealer = dispatch.auth("dealer", dealer_id="D1")
    assert (await dispatch.client.get("/v1/service-centers", headers=dealer)).status_code == 403


async def test_the_same_idempotency_key_replays_the_first_registration(dispatch):
    headers = {**dispatch.dispatcher, "Idempotency-Key": "center-k1"}
    body = {"id": "C-IDEM", "name": "Idem", "region": "north", "kind": "branch"}
    first = await dispatch.client.post("/v1/service-centers", json=body, headers=headers)
    replay = await dispatch.client.post("/v1/service-centers", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    other = await dispatch.client.post("/v1/service-centers", json={**body, "name": "Other"}, headers=headers)
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
