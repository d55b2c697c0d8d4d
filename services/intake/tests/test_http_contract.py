"""intake's HTTP contract (design.md, intake :8001) against a real database and Kafka broker."""

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.tests.conftest import new_request_body


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


NOW = lambda: datetime.now(UTC)  # noqa: E731


async def test_an_agent_opens_a_request_and_reads_it_back(intake):
    created = await intake.open(serial="SN-A1", urgent=True, customer_tier="key_account", dealer_id="D1")
    assert created.status_code == 201
    body = created.json()
    assert created.headers["location"] == f"/v1/service-requests/{body['id']}"
    assert body["status"] == "received"
    assert body["dealer_id"] == "D1"
    assert body["product"] == {"serial": "SN-A1", "model": "T-100", "product_line": "tractor"}
    assert body["customer_tier"] == "key_account" and body["urgent"] is True
    assert body["coverage"] is None and body["job_id"] is None and body["mode"] is None
    assert [h["type"] for h in body["history"]] == ["service_request.received"]

    fetched = await intake.client.get(f"/v1/service-requests/{body['id']}", headers=intake.auth("analyst"))
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_a_dealer_opens_requests_for_itself_only(intake):
    dealer = intake.auth("dealer", dealer_id="D7")
    own = await intake.open(headers=dealer)
    assert own.status_code == 201 and own.json()["dealer_id"] == "D7"

    other = await intake.open(headers=dealer, dealer_id="D8")
    assert other.status_code == 403
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["field"] == "dealer_id"


async def test_a_dealer_never_sees_another_dealers_request(intake):
    theirs = (await intake.open(dealer_id="D2")).json()
    mine = (await intake.open(dealer_id="D1")).json()
    d1 = intake.auth("dealer", dealer_id="D1")

    hidden = await intake.client.get(f"/v1/service-requests/{theirs['id']}", headers=d1)
    assert hidden.status_code == 404
    assert theirs["id"] in hidden.json()["detail"]

    listed = (await intake.client.get("/v1/service-requests?limit=500", headers=d1)).json()
    assert {item["dealer_id"] for item in listed["items"]} == {"D1"}
    assert mine["id"] in {item["id"] for item in listed["items"]}
    refused = await intake.client.get("/v1/service-requests?dealer_id=D2", headers=d1)
    assert refused.status_code == 403
    cancel = await intake.client.post(f"/v1/service-requests/{theirs['id']}/cancel", json={"reason": "x"}, headers=d1)
    assert cancel.status_code == 404


async def test_a_second_open_request_for_the_same_serial_is_a_conflict_naming_the_first(intake):
    first = (await intake.open(serial="SN-DUP")).json()
    second = await intake.open(serial="SN-DUP")
    assert second.status_code == 409
    assert second.json()["existing_id"] == first["id"]

    await intake.client.post(
        f"/v1/service-requests/{first['id']}/cancel", json={"reason": "typo"}, headers=intake.agent
    )
    again = await intake.open(serial="SN-DUP")
    assert again.status_code == 201, "a cancelled request frees its serial"


@pytest.mark.parametrize(
    "urgent, tier, expected", [(True, "standard", "P1"), (False, "key_account", "P2"), (False, "farmer", "P3")]
)
async def test_triage_defaults_the_priority_from_urgency_and_tier(intake, urgent, tier, expected):
    created = (await intake.open(urgent=urgent, customer_tier=tier)).json()
    triaged = await intake.client.post(
        f"/v1/service-requests/{created['id']}/triage", json={"mode": "onsite"}, headers=intake.agent
    )
    assert triaged.status_code == 200
    assert (triaged.json()["status"], triaged.json()["priority"], triaged.json()["mode"]) == (
        "triaged",
        expected,
        "onsite",
    )


async def test_phone_triage_closes_the_request_and_frees_the_serial(intake):
    created = (await intake.open(serial="SN-PHONE")).json()
    triaged = (
        await intake.client.post(
            f"/v1/service-requests/{created['id']}/triage",
            json={"mode": "phone", "note": "reset the controller"},
            headers=intake.agent,
        )
    ).json()
    assert triaged["status"] == "closed"
    assert [h["type"] for h in triaged["history"]][-3:] == [
        "service_request.triaged",
        "service_request.resolved",
        "service_request.closed",
    ]
    assert (await intake.open(serial="SN-PHONE")).status_code == 201


async def test_transitions_the_status_does_not_allow_are_conflicts_and_change_nothing(intake):
    created = (await intake.open()).json()
    url = f"/v1/service-requests/{created['id']}"
    assert (
        await intake.client.post(f"{url}/escalate", json={"reason": "2nd level"}, headers=intake.agent)
    ).status_code == 200
    again = await intake.client.post(f"{url}/escalate", json={"reason": "3rd"}, headers=intake.agent)
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/invalid-transition" and again.json()["current_status"] == "escalated"
    assert (
        await intake.client.post(f"{url}/triage", json={"mode": "carry_in"}, headers=intake.agent)
    ).status_code == 200
    assert (
        await intake.client.post(f"{url}/cancel", json={"reason": "unit replaced"}, headers=intake.agent)
    ).status_code == 200
    late = await intake.client.post(f"{url}/triage", json={"mode": "onsite"}, headers=intake.agent)
    assert late.status_code == 409
    final = (await intake.client.get(url, headers=intake.agent)).json()
    assert final["status"] == "cancelled" and final["version"] == 4


async def test_list_filters_by_status_serial_and_dealer_and_pages_with_a_cursor(intake):
    ids = [(await intake.open(dealer_id="DL")).json()["id"] for _ in range(5)]
    await intake.client.post(f"/v1/service-requests/{ids[0]}/escalate", json={"reason": "r"}, headers=intake.agent)

    seen, cursor = [], None
    while True:
        query = "dealer_id=DL&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await intake.client.get(f"/v1/service-requests?{query}", headers=intake.agent)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)), "newest first, every request once"

    escalated = (
        await intake.client.get("/v1/service-requests?status=escalated&dealer_id=DL", headers=intake.agent)
    ).json()
    assert [i["id"] for i in escalated["items"]] == [ids[0]]
    serial = (await intake.client.get(f"/v1/service-requests/{ids[2]}", headers=intake.agent)).json()["product"][
        "serial"
    ]
    by_serial = (await intake.client.get(f"/v1/service-requests?serial={serial}", headers=intake.agent)).json()
    assert [i["id"] for i in by_serial["items"]] == [ids[2]]


@pytest.mark.parametrize(
    "query, status, field",
    [
        ("limit=0", 422, "limit"),
        ("limit=501", 422, "limit"),
        ("status=lost", 422, "status"),
        ("cursor=not-a-cursor", 400, "cursor"),
    ],
)
async def test_bad_list_parameters_are_problems_naming_the_parameter(intake, query, status, field):
    response = await intake.client.get(f"/v1/service-requests?{query}", headers=intake.agent)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.text


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b.update(channel="fax"), "channel"),
        (lambda b: b.update(urgent="very"), "urgent"),
        (lambda b: b.update(symptom="x" * 2001), "symptom"),
        (lambda b: b.update(symptom=""), "symptom"),
        (lambda b: b.pop("customer"), "customer"),
        (lambda b: b["customer"].pop("phone"), "customer.phone"),
        (lambda b: b.update(customer_tier="vip"), "customer_tier"),
        (lambda b: b.update(purchase_date="2999-01-01"), "purchase_date"),
        (lambda b: b.update(purchase_date="yesterday"), "purchase_date"),
        (lambda b: b.update(occurred_at="2026-01-01T10:00:00"), "occurred_at"),
        (lambda b: b.update(colour="red"), "colour"),
    ],
)
async def test_an_invalid_body_is_a_422_naming_the_field(intake, mutate, field):
    body = new_request_body("SN-INVALID")
    mutate(body)
    response = await intake.client.post("/v1/service-requests", json=body, headers=intake.agent)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["status"] == 422 and problem["title"] and problem["detail"]
    assert field in [e["field"] for e in problem["errors"]]
    assert (await intake.open(serial="SN-INVALID")).status_code == 201, "nothing was written by the failure"


async def test_malformed_json_is_a_400(intake):
    response = await intake.client.post(
        "/v1/service-requests",
        content=b'{"channel": "hotline",',
        headers={**intake.agent, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/malformed-json"
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "offset, ok",
    [
        (timedelta(minutes=4), True),
        (timedelta(minutes=6), False),
        (-timedelta(days=44), True),
        (-timedelta(days=46), False),
    ],
)
async def test_occurred_at_may_not_be_far_in_the_future_or_older_than_the_backdate_limit(intake, offset, ok):
    response = await intake.open(occurred_at=iso(NOW() + offset))
    if ok:
        assert response.status_code == 201
        assert response.json()["received_at"].startswith(iso(NOW() + offset)[:16])
    else:
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "occurred_at"


async def test_a_step_may_not_be_dated_before_the_previous_step(intake):
    received_at = NOW() - timedelta(hours=3)
    created = (await intake.open(occurred_at=iso(received_at))).json()
    url = f"/v1/service-requests/{created['id']}/triage"
    early = await intake.client.post(
        url, json={"mode": "onsite", "occurred_at": iso(received_at - timedelta(minutes=1))}, headers=intake.agent
    )
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "occurred_at"
    on_time = await intake.client.post(
        url, json={"mode": "onsite", "occurred_at": iso(received_at + timedelta(hours=1))}, headers=intake.agent
    )
    assert on_time.status_code == 200
    assert on_time.json()["history"][-1]["time"] == iso(received_at + timedelta(hours=1)).replace(".000000", "")


async def test_unknown_ids_are_404_problems(intake):
    for method, url, body in [
        ("GET", "/v1/service-requests/does-not-exist", None),
        ("POST", "/v1/service-requests/does-not-exist/triage", {"mode": "onsite"}),
        ("POST", "/v1/service-requests/does-not-exist/cancel", {"reason": "x"}),
    ]:
        response = await intake.client.request(method, url, json=body, headers=intake.agent)
        assert response.status_code == 404, url
        assert response.json()["type"] == "/problems/not-found"


async def test_a_missing_or_forged_token_is_401_and_a_wrong_role_is_403(intake):
    body = new_request_body("SN-AUTH")
    missing = await intake.client.post("/v1/service-requests", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    forged = await intake.client.post(
        "/v1/service-requests", json=body, headers={"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"}
    )
    assert forged.status_code == 401
    analyst = await intake.client.post("/v1/service-requests", json=body, headers=intake.auth("analyst"))
    assert analyst.status_code == 403
    assert "agent" in analyst.json()["detail"]
    technician = await intake.client.get("/v1/service-requests", headers=intake.auth("technician", sub="T1"))
    assert technician.status_code == 403


async def test_the_same_idempotency_key_replays_the_first_answer(intake):
    body = new_request_body("SN-IDEM")
    headers = {**intake.agent, "Idempotency-Key": "k-123"}
    first = await intake.client.post("/v1/service-requests", json=body, headers=headers)
    replay = await intake.client.post("/v1/service-requests", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    listed = (await intake.client.get("/v1/service-requests?serial=SN-IDEM", headers=intake.agent)).json()
    assert len(listed["items"]) == 1

    changed = await intake.client.post("/v1/service-requests", json={**body, "symptom": "other"}, headers=headers)
    assert changed.status_code == 422 and changed.json()["type"] == "/problems/idempotency-key-reused"

    other_caller = {**intake.auth("agent", sub="agent-2"), "Idempotency-Key": "k-123"}
    scoped = await intake.client.post("/v1/service-requests", json=body, headers=other_caller)
    assert scoped.status_code == 409 and scoped.json()["existing_id"] == first.json()["id"], (
        "another caller's key is its own: the request runs and meets the duplicate-serial rule"
    )


async def test_an_idempotency_key_still_running_is_a_409(intake):
    import asyncio

    from fastapi.responses import JSONResponse

    from shared.http.idempotency import IdempotentCall
    from shared.http.problems import Problem

    store, release = intake.app.state.idempotency, asyncio.Event()

    async def first_call() -> JSONResponse:
        await release.wait()
        return JSONResponse({}, status_code=201)

    first = asyncio.create_task(IdempotentCall(store, "agent|scope", "k-running", "hash", "/").run(first_call))
    await asyncio.sleep(0)
    with pytest.raises(Problem) as running:
        await IdempotentCall(store, "agent|scope", "k-running", "hash", "/").run(first_call)
    assert running.value.status == 409
    release.set()
    await first


async def test_health_readiness_metrics_and_openapi_are_served(intake):
    assert (await intake.client.get("/healthz")).json() == {"status": "ok"}
    ready = await intake.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    await intake.open()
    metrics = (await intake.client.get("/metrics")).text
    assert (
        'servicetrail_http_requests_total{method="POST",route="/v1/service-requests",service="intake",status="201"}'
        in metrics
    )
    spec = (await intake.client.get("/openapi.json")).json()
    assert "/v1/service-requests/{request_id}/triage" in spec["paths"]
    assert "Open a customer's case" in spec["paths"]["/v1/service-requests"]["post"]["description"]
