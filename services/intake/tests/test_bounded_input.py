"""Forged cursors and moments without a UTC time are refused with a problem naming the field, never a 500."""

import base64
import json

import pytest


@pytest.mark.parametrize("after", [10**30, 2**63, True, [1, 2]])
async def test_a_forged_cursor_is_a_400_naming_the_cursor(intake, after):
    cursor = base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")
    answer = await intake.client.get(f"/v1/service-requests?cursor={cursor}", headers=intake.agent)
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_an_occurred_at_with_no_utc_time_is_a_422_naming_the_field(intake, moment):
    opened = await intake.open(occurred_at=moment)
    assert opened.status_code == 422 and opened.json()["errors"][0]["field"] == "occurred_at"
    listed = (await intake.client.get("/v1/service-requests", headers=intake.agent)).json()
    assert listed["items"] == []


@pytest.mark.parametrize("url", ["/v1/service-requests?serial=SN%00-1", "/v1/service-requests/abc%00def"])
async def test_a_nul_character_in_the_path_or_query_is_a_400(intake, url):
    answer = await intake.client.get(url, headers=intake.agent)
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/problem+json"
