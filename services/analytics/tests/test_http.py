"""The HTTP contract: who may read, and problem details that name the offending parameter."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "params, field",
    [
        ({"group_by": "galaxy"}, "query.group_by"),
        ({"from": "2025-13-01"}, "query.from"),
        ({"to": "yesterday"}, "query.to"),
        ({"as_of": "2025-01-01T00:00:00"}, "query.as_of"),
        ({"as_of": "soon"}, "query.as_of"),
        ({"from": "2025-02-01", "to": "2025-02-01"}, "query.from"),
        ({"from": "2025-03-01", "to": "2025-02-01"}, "query.to"),
        ({"from": "1900-01-01", "to": "2025-02-01"}, "query.from"),
        ({"from": "2005-01-01", "to": "2025-01-01"}, "query.from"),  # twenty years
        ({"from": "2019-01-01", "to": "2025-01-01"}, "query.from"),  # six: more than five
    ],
)
async def test_a_bad_parameter_is_a_problem_naming_it(analytics, params, field):
    for view in ("throughput", "satisfaction", "scorecard"):
        response = await analytics.client.get(f"/v1/views/{view}", params=params, headers=analytics.analyst)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert field in [e["field"] for e in problem["errors"]], problem
        assert problem["status"] == 422 and problem["detail"]


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-06-01T12:00:00+14:00"])
async def test_an_as_of_at_the_ends_of_time_answers_with_the_numbers_of_then(analytics, as_of):
    for view in ("throughput", "satisfaction", "scorecard", "trend", "durations"):
        response = await analytics.client.get(f"/v1/views/{view}", params={"as_of": as_of}, headers=analytics.analyst)
        assert response.status_code == 200, response.text


async def test_views_need_a_token_and_a_reading_role(analytics):
    assert (await analytics.client.get("/v1/views/throughput")).status_code == 401
    assert (await analytics.get("throughput", headers=analytics.auth("agent"))).status_code == 403
    for role in ("analyst", "admin"):
        response = await analytics.get("scorecard", headers=analytics.auth(role), group_by="month")
        assert response.status_code == 200 and isinstance(response.json()["rows"], list)


async def test_only_an_admin_may_rebuild(analytics):
    for headers in (analytics.analyst, analytics.auth("dealer", dealer_id="D1")):
        assert (await analytics.client.post("/v1/admin/rebuild", headers=headers)).status_code == 403
        assert (await analytics.client.get("/v1/admin/rebuild", headers=headers)).status_code == 403


async def test_the_dashboard_page_and_its_script_are_served_without_a_cdn(analytics):
    page = await analytics.client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http" not in page.text.replace("http://www.w3.org", "")  # nothing fetched from elsewhere
    for name in ("common.js", "dashboard.js"):  # the page's scripts: common.js draws the SVG for it
        assert f'<script src="/dashboard/{name}">' in page.text
    script = await analytics.client.get("/dashboard/common.js")
    assert script.status_code == 200 and "createElementNS" in script.text
    assert (await analytics.client.get("/dashboard/dashboard.js")).status_code == 200
    assert (await analytics.client.get("/dashboard/secrets.txt")).status_code == 404


async def test_the_views_are_documented_in_openapi(analytics):
    paths = (await analytics.client.get("/openapi.json")).json()["paths"]
    for path in (
        "/v1/views/throughput",
        "/v1/views/satisfaction",
        "/v1/views/scorecard",
        "/v1/views/alerts",
        "/v1/views/paid-service",
        "/v1/views/part-waits",
        "/v1/admin/rebuild",
    ):
        assert path in paths
    parameters = {p["name"] for p in paths["/v1/views/throughput"]["get"]["parameters"]}
    assert {"group_by", "from", "to", "as_of"} <= parameters
