"""A dealer token never sees or changes another dealer's complaints, whatever other roles it carries: every
route of complaints, with every multi-role dealer token (design.md, Auth)."""

from sqlalchemy import func, select

from services.complaints.tests.conftest import known_case
from shared.eventstore.tables import events
from shared.testing.tenancy import leaks


async def test_every_route_refuses_another_dealers_complaints_to_every_multi_role_dealer_token(complaints, event_bus):
    request_id, job_id = await known_case(complaints, event_bus, dealer_id="D2")
    opened = await complaints.open(request_id=request_id, job_id=job_id)
    assert opened.status_code == 201 and opened.json()["dealer_id"] == "D2"
    cid = opened.json()["id"]
    url = f"/v1/complaints/{cid}"
    probes = {
        ("POST", "/v1/complaints"): (
            "/v1/complaints",
            {"channel": "dealer", "category": "delay", "severity": "general", "description": "x", "dealer_id": "D2"},
        ),
        ("GET", "/v1/complaints"): (f"/v1/complaints?request_id={request_id}", None),
        ("GET", "/v1/complaints/{complaint_id}"): (url, None),
        ("POST", "/v1/complaints/{complaint_id}/acknowledge"): (f"{url}/acknowledge", {}),
        ("POST", "/v1/complaints/{complaint_id}/escalate"): (f"{url}/escalate", {"reason": "x"}),
        ("POST", "/v1/complaints/{complaint_id}/wait-on-customer"): (f"{url}/wait-on-customer", {"reason": "x"}),
        ("POST", "/v1/complaints/{complaint_id}/customer-responded"): (f"{url}/customer-responded", {}),
        ("POST", "/v1/complaints/{complaint_id}/resolve"): (f"{url}/resolve", {"resolution": "x"}),
        ("POST", "/v1/complaints/{complaint_id}/reopen"): (f"{url}/reopen", {"reason": "x"}),
        ("POST", "/v1/complaints/{complaint_id}/close"): (f"{url}/close", {"customer_confirmed": True}),
    }

    async def stored() -> int:
        async with complaints.app.state.runtime.db.read() as conn:
            return (await conn.execute(select(func.count()).select_from(events))).scalar_one()

    found = await leaks(
        complaints.client,
        complaints.app,
        probes,
        lambda role: complaints.auth("dealer", role, dealer_id="D1", sub="T1"),
        stored,
        (cid, request_id),
    )
    assert found == []
