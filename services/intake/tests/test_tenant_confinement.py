"""A dealer token never sees or changes another dealer's requests, whatever other roles it carries: every
route of intake, with every multi-role dealer token (design.md, Auth)."""

from sqlalchemy import func, select

from services.intake.tests.conftest import new_request_body
from shared.eventstore.tables import events
from shared.testing.app import eventually
from shared.testing.tenancy import leaks

# A public address literal: accepted without DNS (this machine resolves nothing but loopback).
PUBLIC_URL = "https://93.184.215.14/hooks"


async def test_every_route_refuses_another_dealers_requests_to_every_multi_role_dealer_token(intake):
    own = intake.auth("dealer", dealer_id="D2")
    hook = (
        await intake.client.post("/v1/webhooks", json={"url": PUBLIC_URL, "types": ["service_request.*"]}, headers=own)
    ).json()
    hid = hook["id"]
    body = new_request_body("SN-TENANT-D2", channel="dealer")
    theirs = (
        await intake.client.post("/v1/service-requests", json=body, headers=intake.auth("dealer", dealer_id="D2"))
    ).json()
    rid = theirs["id"]
    assert (await intake.client.get(f"/v1/service-requests/{rid}", headers=own)).status_code == 200
    deliveries = await eventually(
        lambda: intake.client.get(f"/v1/webhooks/{hid}/deliveries", headers=own),
        until=lambda answer: answer.status_code == 200 and answer.json()["items"],
    )
    did = deliveries.json()["items"][0]["id"]
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
        ("POST", "/v1/webhooks"): ("/v1/webhooks", {"url": PUBLIC_URL, "types": ["job.*"], "dealer_id": "D2"}),
        ("GET", "/v1/webhooks"): ("/v1/webhooks", None),
        ("GET", "/v1/webhooks/{webhook_id}"): (f"/v1/webhooks/{hid}", None),
        ("DELETE", "/v1/webhooks/{webhook_id}"): (f"/v1/webhooks/{hid}", None),
        ("GET", "/v1/webhooks/{webhook_id}/deliveries"): (f"/v1/webhooks/{hid}/deliveries", None),
        ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): (
            f"/v1/webhooks/{hid}/deliveries/{did}/redeliver",
            None,
        ),
        ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): (f"/v1/webhooks/{hid}/rotate-secret", None),
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
        (rid, hid),
    )
    assert found == []
