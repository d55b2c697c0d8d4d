"""A dealer token never sees or changes another dealer's jobs, centers or technicians, whatever other roles it
carries (design.md, Auth): every route of the OpenAPI document is tried with every multi-role dealer token."""

import pytest
from sqlalchemy import func, select

from services.dispatch.tests.conftest import assigned_job
from shared.eventstore.tables import events

OTHER_ROLES = ["agent", "dispatcher", "technician", "warranty_officer", "complaints_officer", "analyst"]
OPS = {"/healthz", "/readyz", "/metrics"}


def attacks(job_id: str) -> dict[tuple[str, str], tuple[str, dict | None]]:
    """One request per route, aimed at dealer D2's rows: (method, route) → (url, body)."""
    return {
        ("GET", "/v1/jobs"): ("/v1/jobs?dealer_id=D2", None),
        ("GET", "/v1/jobs/{job_id}"): (f"/v1/jobs/{job_id}", None),
        ("POST", "/v1/jobs/{job_id}/assign"): (f"/v1/jobs/{job_id}/assign", {"technician_id": "T-D2"}),
        ("POST", "/v1/jobs/{job_id}/accept"): (f"/v1/jobs/{job_id}/accept", None),
        ("POST", "/v1/jobs/{job_id}/arrive"): (f"/v1/jobs/{job_id}/arrive", None),
        ("POST", "/v1/jobs/{job_id}/complete"): (f"/v1/jobs/{job_id}/complete", {"fixed": True}),
        ("POST", "/v1/jobs/{job_id}/revisit"): (f"/v1/jobs/{job_id}/revisit", {"satisfaction": 1, "channel": "phone"}),
        ("POST", "/v1/service-centers"): (
            "/v1/service-centers",
            {"id": "C-X", "name": "X", "region": "far", "kind": "authorized_dealer", "dealer_id": "D2"},
        ),
        ("GET", "/v1/service-centers"): ("/v1/service-centers?dealer_id=D2", None),
        ("GET", "/v1/service-centers/{center_id}"): ("/v1/service-centers/C-D2", None),
        ("PATCH", "/v1/service-centers/{center_id}"): ("/v1/service-centers/C-D2", {"name": "Renamed"}),
        ("POST", "/v1/technicians"): ("/v1/technicians", {"id": "T-X", "center_id": "C-D2", "name": "X"}),
        ("GET", "/v1/technicians"): ("/v1/technicians?center_id=C-D2", None),
        ("GET", "/v1/technicians/{technician_id}"): ("/v1/technicians/T-D2", None),
        ("PATCH", "/v1/technicians/{technician_id}"): ("/v1/technicians/T-D2", {"active": False}),
        ("GET", "/v1/technicians/{technician_id}/queue"): ("/v1/technicians/T-D2/queue", None),
    }


async def stored_events(dispatch) -> int:
    async with dispatch.app.state.runtime.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(events))).scalar_one()


@pytest.fixture
async def other_dealers_job(dispatch, event_bus):
    """Dealer D2's center, technician and an assigned job; the technician's id is also the attacker's `sub`."""
    assert (await dispatch.center("C-D2", region="d2land", kind="authorized_dealer", dealer_id="D2")).status_code == 201
    assert (await dispatch.technician_in("T-D2", "C-D2")).status_code == 201
    assert (await dispatch.center("C-D1", region="d1land", kind="authorized_dealer", dealer_id="D1")).status_code == 201
    return await assigned_job(dispatch, event_bus, dealer_id="D2", region="d2land")


async def test_every_route_refuses_another_dealers_rows_to_every_multi_role_dealer_token(dispatch, other_dealers_job):
    job_id = other_dealers_job["id"]
    table = attacks(job_id)
    documented = {
        (method.upper(), path)
        for path, ops in dispatch.app.openapi()["paths"].items()
        for method in ops
        if path not in OPS
    }
    assert documented == set(table), "a route without a tenant probe: add it to attacks()"

    owner = dispatch.auth("dealer", "dispatcher", dealer_id="D2", sub="T-D2")
    for (method, _), (url, _) in table.items():
        if method == "GET":  # the rows exist and their own dealer sees them: the probes below can fail
            answer = await dispatch.client.get(url, headers=owner)
            assert answer.status_code == 200 and ("D2" in answer.text), (url, answer.text)

    before = await stored_events(dispatch)
    leaks = []
    for role in OTHER_ROLES:
        token = dispatch.auth("dealer", role, dealer_id="D1", sub="T-D2")
        for (method, route), (url, body) in table.items():
            answer = await dispatch.client.request(method, url, json=body, headers=token)
            refused = answer.status_code in (403, 404, 422)
            empty_list = answer.status_code == 200 and answer.json().get("items") == []
            if not (refused or empty_list):
                leaks.append((role, method, route, answer.status_code, answer.text[:120]))
    assert leaks == []
    assert await stored_events(dispatch) == before, "a refused request wrote an event"
