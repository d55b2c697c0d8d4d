"""A dealer token never sees or changes another dealer's requests, whatever other roles it carries: every
route of intake, with every multi-role dealer token (design.md, Auth)."""

from sqlalchemy import func, select

from services.intake.tests.conftest import new_request_body
from shared.eventstore.tables import events
from shared.testing.tenancy import leaks


async def test_every_route_refuses_another_dealers_requests_to_every_multi_role_dealer_token(intake):
    body = new_request_body("SN-TENANT-D2", channel="dealer")
    theirs = (
        await intake.client.post("/v1/service-requests", json=body, headers=intake.auth("dealer", dealer_id="D2"))
    ).json()
    rid = theirs["id"]
    own = intake.auth("dealer", dealer_id="D2")
    assert (await intake.client.get(f"/v1/service-requests/{rid}", headers=own)).status_code == 200
    probes = {
        ("POST", "/v1/service-requests"): (
            "/v1/service-requests",
            {**new_request_body("SN-TENANT-X"), "dealer_id": "D2"},
        ),
        ("GET", "/v1/service-requests"): ("/v1/service-requests?serial=SN-TENANT-D2", None),
        ("GET", "/v1/service-requests/{request_id}"): (f"/v1/service-requests/{rid}", None),
        ("POST", "/v1/service-requests/{request_id}/triage"): (
            f"/v1/service-requests/{rid}/triage",
            {"mode": "onsite"},
        ),
        ("POST", "/v1/service-requests/{request_id}/escalate"): (
            f"/v1/service-requests/{rid}/escalate",
            {"reason": "x"},
        ),
        ("POST", "/v1/service-requests/{request_id}/cancel"): (f"/v1/service-requests/{rid}/cancel", {"reason": "x"}),
        ("POST", "/v1/service-requests/{request_id}/quote"): (
            f"/v1/service-requests/{rid}/quote",
            {"labour_minutes": 30, "parts": []},
        ),
        ("POST", "/v1/service-requests/{request_id}/quote/accept"): (
            f"/v1/service-requests/{rid}/quote/accept",
            {"channel": "dealer"},
        ),
        ("POST", "/v1/service-requests/{request_id}/quote/decline"): (
            f"/v1/service-requests/{rid}/quote/decline",
            {"reason": "x"},
        ),
    }

    async def stored() -> int:
        async with intake.app.state.runtime.db.read() as conn:
            return (await conn.execute(select(func.count()).select_from(events))).scalar_one()

    found = await leaks(
        intake.client,
        intake.app,
        probes,
        lambda role: intake.auth("dealer", role, dealer_id="D1", sub="T1"),
        stored,
        (rid,),
    )
    assert found == []
