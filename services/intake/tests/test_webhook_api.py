"""The webhook routes' answers: who may subscribe to what, and the URLs and types refused as problems that
name the field (design.md, intake, Webhooks; HTTP API)."""

from __future__ import annotations

import pytest

PUBLIC = "https://93.184.215.14/hooks"  # a public address literal: accepted without DNS


def dealer_token(intake, dealer_id="D1"):
    return intake.auth("dealer", dealer_id=dealer_id)


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hooks",  # not https
        "https://10.0.0.7/hooks",
        "https://192.168.1.20/hooks",
        "https://127.0.0.1:8443/hooks",
        "https://localhost/hooks",  # a name that resolves to loopback
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://0.0.0.0/hooks",
        "https://[::1]/hooks",
        "https://[fe80::1]/hooks",
        "https://[fd00::5]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",  # IPv4-mapped loopback
        "https://[::ffff:a9fe:a9fe]/hooks",  # IPv4-mapped link-local
        "https://224.0.0.251/hooks",
        "https://no-such-host.invalid/hooks",
    ],
)
async def test_a_url_that_is_not_https_or_reaches_a_private_address_is_a_422_naming_url(intake, url):
    answer = await intake.client.post(
        "/v1/webhooks", json={"url": url, "types": ["job.*"]}, headers=dealer_token(intake)
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == ["url"]
    assert (await intake.client.get("/v1/webhooks", headers=dealer_token(intake))).json()["items"] == []


@pytest.mark.parametrize("types", [["job.exploded"], ["nothing.*"], ["job.*", "claim.nope"], []])
async def test_an_unknown_event_type_or_a_pattern_matching_none_is_a_422_naming_types(intake, types):
    answer = await intake.client.post(
        "/v1/webhooks", json={"url": PUBLIC, "types": types}, headers=dealer_token(intake)
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"].startswith("types")


async def test_a_dealer_cannot_subscribe_for_another_dealer_and_other_roles_not_at_all(intake):
    body = {"url": PUBLIC, "types": ["job.*"], "dealer_id": "D2"}
    answer = await intake.client.post("/v1/webhooks", json=body, headers=dealer_token(intake, "D1"))
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["field"] == "dealer_id"
    answer = await intake.client.post("/v1/webhooks", json={"url": PUBLIC, "types": ["job.*"]}, headers=intake.agent)
    assert answer.status_code == 403
    answer = await intake.client.post("/v1/webhooks", json={"url": PUBLIC, "types": ["job.*"]})
    assert answer.status_code == 401


async def test_a_subscription_shows_its_secret_once_and_dealers_see_only_their_own(intake):
    created = await intake.client.post(
        "/v1/webhooks",
        json={"url": PUBLIC, "types": ["job.*", "service_request.closed"], "description": "our ERP"},
        headers=dealer_token(intake, "D1"),
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert created.headers["location"] == f"/v1/webhooks/{hook['id']}"
    assert hook["secret"].startswith("whsec_")
    assert (hook["dealer_id"], hook["status"], hook["types"]) == ("D1", "active", ["job.*", "service_request.closed"])
    admin_wide = await intake.client.post(
        "/v1/webhooks", json={"url": PUBLIC, "types": ["*"]}, headers=intake.auth("admin")
    )
    assert admin_wide.status_code == 201 and admin_wide.json()["dealer_id"] is None

    shown = (await intake.client.get(f"/v1/webhooks/{hook['id']}", headers=dealer_token(intake, "D1"))).json()
    assert "secret" not in shown and shown["description"] == "our ERP"
    assert [
        h["id"] for h in (await intake.client.get("/v1/webhooks", headers=dealer_token(intake, "D1"))).json()["items"]
    ] == [hook["id"]]
    assert (await intake.client.get("/v1/webhooks", headers=dealer_token(intake, "D2"))).json()["items"] == []
    assert len((await intake.client.get("/v1/webhooks", headers=intake.auth("admin"))).json()["items"]) == 2
    assert (
        await intake.client.get(f"/v1/webhooks/{hook['id']}", headers=dealer_token(intake, "D2"))
    ).status_code == 404
    assert (
        await intake.client.get(f"/v1/webhooks/{admin_wide.json()['id']}", headers=dealer_token(intake, "D1"))
    ).status_code == 404

    deleted = await intake.client.delete(f"/v1/webhooks/{hook['id']}", headers=dealer_token(intake, "D1"))
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert (await intake.client.get("/v1/webhooks", headers=dealer_token(intake, "D1"))).json()["items"] == []
    again = await intake.client.delete(f"/v1/webhooks/{hook['id']}", headers=dealer_token(intake, "D1"))
    assert again.status_code == 409
    rotate = await intake.client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=dealer_token(intake, "D1"))
    assert rotate.status_code == 409
