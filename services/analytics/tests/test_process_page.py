"""The dashboard's Process page in a real headless browser (Debian's chromium): the chain of hand-offs drawn as a
flow with each step's median and p90, the bottleneck marked, the filter to one dealer, the findings with links
to their requests — checked in the DOM and in a screenshot.

The page is tested twice: served by a small app that answers the four views it reads from the reference
functions over a hand-computed history (exact values, the screenshot), and on the running service with its
real views behind it."""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from io import BytesIO

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Query

from deploy.kafka.launcher import free_port
from services.analytics import dashboard
from services.analytics.commerce_views import paid_service_rows, part_wait_rows
from services.analytics.metrics import Window, to_micros
from services.analytics.process import (
    FindingRules,
    finding_rows,
    handoff_rows,
    process_trails,
    rework_rows,
    variant_rows,
)
from services.analytics.tests import builders as ev
from services.analytics.tests.browser import CHROMIUM, Elements, dump_dom, screenshot
from services.analytics.tests.conftest import unique
from services.analytics.tests.served import analytics_process
from services.analytics.tests.test_process import event, everything, received, step, triaged
from services.analytics.views import GroupBy
from shared.auth import mint_token
from shared.clock import utcnow
from shared.settings import ServiceSettings
from shared.testing.app import eventually
from shared.testing.kafka import publish

pytestmark = pytest.mark.browser  # every test drives headless Chromium

START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = {"from": "2026-03-02", "to": "2026-03-06"}
STEP_FILL, BOTTLENECK_FILL = (0xEE, 0xF4, 0xFE), (0xFD, 0xEC, 0xEA)  # process.css


def paid_with_a_part_on_backorder():
    """r1 (D1) was paid service: quoted at once, accepted a minute later; its job's part waited 1300 minutes
    (backordered at 100, received at 1400, inside the repair step)."""
    part = {"part_request_id": "PR1", "part_number": "P-PUMP"}
    return [
        event("service_request.quote_required", 10, "r1"),
        event("service_request.quote_issued", 10, "r1", quote_id="Q1", total="250.00", currency="EUR"),
        event("service_request.quote_accepted", 11, "r1", quote_id="Q1", total="250.00", currency="EUR"),
        step("part_request.backordered", "r1", 100, **part),
        step("part_request.reserved", "r1", 900, **part, location_kind="warehouse"),
        step("part_request.received", "r1", 1400, **part),
    ]


def history():
    """The hand-computed history of test_process (dealers D1, D2), moved to March 2026, plus D3 whose only
    measured hand-off, a slow phone triage, is its bottleneck, and r1's quote and part wait."""
    shift = to_micros(START)
    events = everything() + paid_with_a_part_on_backorder()
    events += [received("r9", 60, dealer="D3"), triaged("r9", 660, mode="phone")]
    return [dataclasses.replace(e, time=e.time + shift, recorded_at=e.recorded_at + shift) for e in events]


def views_app() -> FastAPI:
    trails = process_trails(history())
    app = FastAPI()
    app.include_router(dashboard.router)

    def window(from_: date, to: date) -> Window:
        return Window.of_dates(from_, to)

    def view(function, **kw):
        async def answer(group_by: GroupBy = GroupBy.dealer, from_: date = Query(alias="from"), to: date = Query()):
            return {"rows": function(trails, window(from_, to), group_by, **kw)}

        return answer

    app.get("/v1/views/handoffs")(view(handoff_rows))
    app.get("/v1/views/rework")(view(rework_rows))
    app.get("/v1/views/variants")(view(variant_rows))
    app.get("/v1/views/process-findings")(view(finding_rows, rules=FindingRules({"triage": 15})))
    app.get("/v1/views/paid-service")(view(paid_service_rows))
    app.get("/v1/views/part-waits")(view(part_wait_rows))
    return app


@pytest.fixture(scope="module")
def served():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(views_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started, "the test app did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def boxes_in(png: bytes) -> tuple[list[int], list[int]]:
    """The step boxes seen in a screenshot: the left edges of the runs of the step fill and of the bottleneck
    fill (at least 20 px wide), on the image row most covered by those fills (a row clear of text)."""
    from PIL import Image

    image = Image.open(BytesIO(png)).convert("RGB")
    width, height = image.size
    pixels = image.load()

    def runs(y: int, colour: tuple[int, int, int]) -> list[tuple[int, int]]:
        found, start = [], None
        for x in range(width + 1):
            inside = x < width and all(abs(a - b) <= 2 for a, b in zip(pixels[x, y], colour))
            if inside and start is None:
                start = x
            elif not inside and start is not None:
                if x - start >= 20:
                    found.append((start, x - start))
                start = None
        return found

    best = max(range(height), key=lambda y: sum(n for _, n in runs(y, STEP_FILL) + runs(y, BOTTLENECK_FILL)))
    return [x for x, _ in runs(best, STEP_FILL)], [x for x, _ in runs(best, BOTTLENECK_FILL)]


def page_url(base: str, **params: str) -> str:
    fragment = "&".join(
        f"{k}={v}" for k, v in {"token": "t", **WINDOW, "intake": "http://intake.test", **params}.items()
    )
    return f"{base}/dashboard/process#{fragment}"


@pytest.mark.skipif(os.environ.get("SERVICETRAIL_SKIP_BROWSER") == "1", reason="SERVICETRAIL_SKIP_BROWSER=1")
async def test_the_process_page_draws_the_chain_with_its_waiting_times_and_marks_the_bottleneck(served):
    assert CHROMIUM, "the page test needs Debian's chromium: apt-get install -y chromium"
    page = await dump_dom(page_url(served, group_by="dealer", key="D1"))
    dom = Elements()
    dom.feed(page)
    assert 'data-state="ready"' in page, page[-3000:]
    steps = {a["data-step"]: a for tag, a, _ in dom.found if tag == "g" and a.get("class") == "step"}
    assert list(steps) == ["triage", "assign", "accept", "travel", "repair", "follow_up"]
    # D1's hand-offs as test_process computed them by hand
    assert {s: (a["data-median"], a["data-p90"], a["data-count"]) for s, a in steps.items()} == {
        "triage": ("5", "10", "3"),
        "assign": ("1", "1", "2"),
        "accept": ("31.5", "44", "2"),
        "travel": ("90", "110", "2"),
        "repair": ("780", "1460", "2"),
        "follow_up": ("1440", "1440", "1"),
    }
    assert [s for s, a in steps.items() if a["data-bottleneck"] == "true"] == ["repair"]
    assert dom.text_of(lambda tag, a: tag == "text" and a.get("class") == "bottleneck-label") == [
        "bottleneck · 47.8% of the time"
    ]
    medians = dom.text_of(lambda tag, a: tag == "text" and a.get("class") == "step-value median")
    assert medians[0] == "median 5 min" and medians[4] == "median 13.0 h"
    findings = [(a["data-kind"], a["data-key"]) for tag, a, _ in dom.found if tag == "li" and "data-kind" in a]
    assert ("repeat_visits", "D1") in findings and all(key == "D1" for _, key in findings)
    links = {a["data-request-id"]: a["href"] for tag, a, _ in dom.found if tag == "a" and a.get("class") == "request"}
    assert links["r1"] == "http://intake.test/v1/service-requests/r1"
    assert {a.get("data-key") for tag, a, _ in dom.found if tag == "tr"} >= {"D1", "D2", "D3"}  # matrix and rework

    steps_seen, bottleneck_seen = boxes_in(await screenshot(page_url(served, group_by="dealer", key="D1")))
    assert len(steps_seen) == 5 and len(bottleneck_seen) == 1, (steps_seen, bottleneck_seen)
    assert steps_seen[3] < bottleneck_seen[0] < steps_seen[4]  # the fifth box, repair, is drawn marked


@pytest.mark.skipif(os.environ.get("SERVICETRAIL_SKIP_BROWSER") == "1", reason="SERVICETRAIL_SKIP_BROWSER=1")
async def test_the_page_draws_the_quote_and_parts_waits_under_their_steps_and_the_paid_service_and_part_tables(
    served,
):
    page = await dump_dom(page_url(served, group_by="dealer", key="D1"))
    dom = Elements()
    dom.feed(page)
    assert 'data-state="ready"' in page, page[-3000:]
    waits = {a["data-step"]: a for tag, a, _ in dom.found if tag == "g" and a.get("class") == "wait"}
    assert {s: (a["data-owner"], a["data-median"], a["data-count"]) for s, a in waits.items()} == {
        "quoting": ("hotline", "0", "1"),
        "customer_decision": ("customer", "1", "1"),
        "parts_wait": ("warehouse", "1300", "1"),
    }
    assert dom.text_of(lambda tag, a: tag == "text" and a.get("class") == "wait-name") == [
        "Quoting",
        "Customer",
        "Parts",
    ]
    headers = dom.text_of(lambda tag, a: tag == "th")
    assert {"Customer decides", "Waiting for parts"} <= set(headers)  # the matrix has their columns

    def rows_of(table: str) -> list[dict]:
        return [a for tag, a, _ in dom.found if tag == "tr" and a.get("data-table") == table]

    assert [a["data-key"] for a in rows_of("paid-service-table")] == ["D1"]
    assert [(a["data-key"], a["data-part"]) for a in rows_of("part-waits-table")] == [("D1", "P-PUMP")]
    texts = dom.text_of(lambda tag, a: tag == "td" and a.get("data-column") in ("revenue", "total_wait_minutes"))
    assert texts == ["250.00", "1300"]


@pytest.mark.skipif(os.environ.get("SERVICETRAIL_SKIP_BROWSER") == "1", reason="SERVICETRAIL_SKIP_BROWSER=1")
async def test_filtered_to_another_dealer_the_page_marks_that_dealers_bottleneck(served):
    page = await dump_dom(page_url(served, group_by="dealer", key="D3"))
    dom = Elements()
    dom.feed(page)
    steps = {a["data-step"]: a for tag, a, _ in dom.found if tag == "g" and a.get("class") == "step"}
    assert [s for s, a in steps.items() if a["data-count"] != "0"] == ["triage"]
    assert [s for s, a in steps.items() if a["data-bottleneck"] == "true"] == ["triage"]
    assert steps["triage"].get("data-median") == "600"
    slow = [a for tag, a, _ in dom.found if tag == "li" and a.get("data-kind") == "slow_handoff"]
    assert [(a["data-key"], a["data-step"]) for a in slow] == [("D3", "triage")]
    steps_seen, bottleneck_seen = boxes_in(await screenshot(page_url(served, group_by="dealer", key="D3")))
    assert len(steps_seen) == 5 and len(bottleneck_seen) == 1 and bottleneck_seen[0] < steps_seen[0]


@pytest.fixture(scope="module")
async def service(tmp_path_factory, kafka_bootstrap):
    """`python -m services.analytics` on a free port, as `make run` starts it: the real views behind the page."""
    async with analytics_process(
        tmp_path_factory.mktemp("process-page"), kafka_bootstrap, HANDOFF_TARGETS='{"triage": 15, "assign": 5}'
    ) as base:
        yield base


@pytest.mark.skipif(os.environ.get("SERVICETRAIL_SKIP_BROWSER") == "1", reason="SERVICETRAIL_SKIP_BROWSER=1")
async def test_the_page_on_the_running_service_draws_what_its_views_say(service, kafka_bootstrap):
    dealer, center = unique("D"), unique("C")
    t0 = (utcnow() - timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
    keys = dict(dealer_id=dealer, region=unique("r"), product_line="washer")
    events = []
    for i in range(3):
        rid, jid, start = str(uuid.uuid4()), str(uuid.uuid4()), t0 + timedelta(hours=i)
        events += [
            ev.received(rid, start, **keys),
            ev.triaged(rid, start + timedelta(minutes=30 + i)),
            ev.job_created(jid, rid, start + timedelta(minutes=30 + i), **keys),
            ev.assigned(jid, rid, start + timedelta(minutes=40 + i), center_id=center, technician_id="T1"),
            ev.accepted(jid, rid, start + timedelta(minutes=50), "T1"),
            ev.arrived(jid, rid, start + timedelta(hours=2), "T1"),
            ev.completed(jid, rid, start + timedelta(hours=20), "T1", fixed=True),
        ]
    await publish(kafka_bootstrap, *events)
    token = mint_token(ServiceSettings().auth_secret, subject="analyst", roles=["analyst"])
    window = {"from": t0.date().isoformat(), "to": (utcnow() + timedelta(days=1)).date().isoformat()}
    async with httpx.AsyncClient(base_url=service, headers={"Authorization": f"Bearer {token}"}) as client:

        async def rows():
            response = await client.get("/v1/views/handoffs", params={**window, "group_by": "dealer"})
            return {r["step"]: r for r in response.json()["rows"] if r["key"] == dealer}

        handoffs = await eventually(rows, until=lambda r: r.get("repair", {}).get("count") == 3, timeout=60)
    fragment = f"token={token}&from={window['from']}&to={window['to']}&group_by=dealer&key={dealer}"
    page = await dump_dom(f"{service}/dashboard/process#{fragment}")
    dom = Elements()
    dom.feed(page)
    assert 'data-state="ready"' in page, page[-3000:]
    steps = {a["data-step"]: a for tag, a, _ in dom.found if tag == "g" and a.get("class") == "step"}
    assert {s: float(a["data-median"]) for s, a in steps.items() if a["data-median"]} == {
        s: r["median_minutes"] for s, r in handoffs.items()
    }
    assert [s for s, a in steps.items() if a["data-bottleneck"] == "true"] == ["repair"]  # 18 h of ~20
    slow = {a.get("data-step") for tag, a, _ in dom.found if tag == "li" and a.get("data-kind") == "slow_handoff"}
    assert slow == {"triage", "assign"}  # 31 min against 15, 10 min against 5 (HANDOFF_TARGETS)
