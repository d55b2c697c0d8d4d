"""The dashboard in a real headless browser (Debian's chromium): the page, served by a running analytics
process, loads the views with the token from its URL and draws the data — SVG bars and labels for the dealers
the test created, the scorecard table, the alerts."""

from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta

import httpx
import pytest

from services.analytics.tests import builders as ev
from services.analytics.tests.browser import CHROMIUM, Elements, dump_dom
from services.analytics.tests.conftest import unique
from services.analytics.tests.served import analytics_process
from shared.auth import mint_token
from shared.clock import utcnow
from shared.settings import ServiceSettings
from shared.testing.app import eventually
from shared.testing.kafka import publish

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
async def served(tmp_path_factory, kafka_bootstrap):
    """`python -m services.analytics` on a free port, as `make run` starts it."""
    async with analytics_process(
        tmp_path_factory.mktemp("dashboard"),
        kafka_bootstrap,
        ALERT_MIN_RESPONSES="1",
        ALERT_MIN_INTERVAL_SECONDS="0.05",
    ) as base:
        yield base


@pytest.mark.skipif(os.environ.get("SERVICETRAIL_SKIP_BROWSER") == "1", reason="SERVICETRAIL_SKIP_BROWSER=1")
async def test_the_dashboard_draws_the_dealers_satisfaction_trend_scorecard_and_alerts(served, kafka_bootstrap):
    assert CHROMIUM, "the dashboard test needs Debian's chromium: apt-get install -y chromium"
    happy, unhappy, center, region = unique("Happy"), unique("Grumpy"), unique("C"), unique("r")
    t0 = (utcnow() - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    events = []
    for dealer, scores in ((happy, (5, 5, 4)), (unhappy, (1, 2))):
        for i, score in enumerate(scores):
            rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
            keys = dict(dealer_id=dealer, region=region, product_line="washer")
            start = t0 + timedelta(hours=i)
            events += [
                ev.received(rid, start, **keys),
                ev.triaged(rid, start + timedelta(minutes=10)),
                ev.job_created(jid, rid, start + timedelta(minutes=10), **keys),
                ev.assigned(jid, rid, start + timedelta(minutes=11), center_id=center, technician_id="T9"),
                ev.arrived(jid, rid, start + timedelta(hours=2), "T9"),
                ev.completed(jid, rid, start + timedelta(hours=3), "T9", fixed=True),
                ev.revisit(jid, rid, start + timedelta(days=1), score, 10 if score > 3 else 2),
            ]
    await publish(kafka_bootstrap, *events)
    token = mint_token(ServiceSettings().auth_secret, subject="analyst", roles=["analyst"])
    headers = {"Authorization": f"Bearer {token}"}
    window = {
        "from": (t0 - timedelta(days=5)).date().isoformat(),
        "to": (utcnow() + timedelta(days=1)).date().isoformat(),
    }
    async with httpx.AsyncClient(base_url=served, headers=headers) as client:

        async def satisfaction():
            rows = (await client.get("/v1/views/satisfaction", params={**window, "group_by": "dealer"})).json()["rows"]
            return {r["key"]: r["responses"] for r in rows}

        await eventually(satisfaction, until=lambda r: r.get(happy) == 3 and r.get(unhappy) == 2, timeout=60)
        await eventually(
            lambda: client.get("/v1/views/alerts", params={"limit": 500}), until=lambda r: unhappy in r.text
        )

    page = await dump_dom(f"{served}/dashboard#token={token}&from={window['from']}&to={window['to']}&group_by=dealer")
    dom = Elements()
    dom.feed(page)
    assert dom.text_of(lambda tag, a: tag == "body") and 'data-state="ready"' in page, page[-3000:]
    labels = dom.text_of(lambda tag, a: tag == "text" and a.get("class") == "key-label")
    assert happy in labels and unhappy in labels  # the satisfaction chart and the scorecard chart
    csat = {a["data-key"]: a for tag, a, _ in dom.found if tag == "rect" and a.get("class") == "csat"}
    nps = {a["data-key"]: a for tag, a, _ in dom.found if tag == "rect" and a.get("class") == "nps"}
    assert (csat[happy]["data-value"], csat[unhappy]["data-value"]) == ("100", "0")
    assert float(csat[happy]["width"]) > 0 == float(csat[unhappy]["width"])
    assert (nps[happy]["data-value"], nps[unhappy]["data-value"]) == ("100", "-100")
    assert any(
        tag == "rect" and a.get("class") == "bar received" and a.get("data-value") != "0" for tag, a, _ in dom.found
    )
    scorecard_keys = {a.get("data-key") for tag, a, _ in dom.found if tag == "tr"}
    assert {happy, unhappy} <= scorecard_keys
    alerts = dom.text_of(lambda tag, a: tag == "li" and a.get("data-key") == unhappy)
    assert alerts and "csat below" in alerts[0]
    assert re.search(r'id="duration-resolve"', page)
