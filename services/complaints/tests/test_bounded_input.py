"""Forged cursors and moments without a UTC time are refused with a problem naming the field, never a 500
(design.md, HTTP API), and nothing is written."""

import base64
import json

import pytest

HUGE_CURSOR = base64.urlsafe_b64encode(json.dumps({"after": 10**30}).encode()).decode().rstrip("=")
NO_UTC_TIME = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize(
    "url", [f"/v1/complaints?cursor={HUGE_CURSOR}", f"/v1/complaints?sort=urgency&cursor={HUGE_CURSOR}"]
)
async def test_a_forged_cursor_with_a_huge_number_is_a_400(complaints, url):
    answer = await complaints.client.get(url, headers=complaints.officer)
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("moment", NO_UTC_TIME)
async def test_a_moment_with_no_utc_time_is_a_422_naming_the_field(complaints, moment):
    listed = await complaints.client.get("/v1/complaints", params={"due_before": moment}, headers=complaints.officer)
    assert listed.status_code == 422 and listed.json()["errors"][0]["field"] == "query.due_before"
    opened = await complaints.open(occurred_at=moment)
    assert opened.status_code == 422 and opened.json()["errors"][0]["field"] == "occurred_at"
