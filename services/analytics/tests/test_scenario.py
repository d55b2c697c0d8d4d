"""A month of two dealers' (and one direct customer's) requests: opened, triaged, escalated and cancelled
through the real intake service, the field work, revisits and complaints published as dispatch and complaints
publish them — shuffled, so that topics interleave in any order — and every view under every grouping
compared with an independent oracle (tests/oracle.py)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.analytics.tests import builders as ev
from services.analytics.tests import oracle
from services.analytics.tests.conftest import unique
from services.analytics.tests.oracle import Case, Job
from services.intake.app import IntakeSettings
from services.intake.app import create_app as create_intake
from shared.clock import rfc3339, utcnow
from shared.testing.app import bearer, eventually, running
from shared.testing.kafka import publish

GROUPINGS = ("dealer", "center", "technician", "region", "product_line", "day", "month", "all")


def scenario(base: datetime) -> tuple[list[Case], dict[str, str]]:
    n = {k: unique(k) for k in ("DA", "DB", "C1", "C2", "T1", "T2", "north", "south", "baler", "dryer")}
    a = dict(dealer=n["DA"], region=n["north"], line=n["baler"])
    b = dict(dealer=n["DB"], region=n["south"], line=n["dryer"])
    c1, c2 = (0, n["C1"], n["T1"]), (0, n["C2"], n["T2"])

    def day(d: float, hh: int, mm: int = 0) -> datetime:
        return base + timedelta(days=d, hours=hh, minutes=mm)

    cases = [
        Case(**a, received=day(-18, 9), triage=(3, "phone")),
        Case(**a, received=day(0, 8), triage=(12, "phone")),
        Case(
            **a,
            received=day(1, 9),
            escalate=5,
            triage=(20.5, "onsite"),
            complaints_naming_the_request=1,
            job=Job([(21, *c1[1:])], arrivals=[180], completions=[(240, True)], revisits=[(2880, 5, 10)]),
        ),
        Case(
            **a,
            received=day(2, 10),
            triage=(9, "onsite"),
            job=Job(
                [(10, *c1[1:])],
                arrivals=[360, 1440],
                completions=[(420, False), (1560, True)],
                breaches=[("arrive", False)],
                revisits=[(3000, 3, 7)],
                complaints_naming_the_job=1,
            ),
        ),
        Case(
            **a,
            received=day(3, 11),
            triage=(14.5, "onsite"),
            job=Job(
                [(15, *c1[1:])],
                arrivals=[1560],
                completions=[(1620, True)],
                breaches=[("arrive", True)],
                revisits=[(1700, 4, None)],
            ),
        ),
        Case(**a, received=day(4, 12), triage=(30, "carry_in"), cancel=120, complaints_naming_the_request=1),
        Case(**a, received=day(5, 13), triage=(45, "onsite"), job=Job([(50, *c2[1:])])),
        Case(**a, received=day(15, 7)),
        Case(
            **b,
            received=day(6, 8),
            triage=(10, "onsite"),
            complaints_naming_the_request=1,
            job=Job(
                [(11, *c1[1:]), (40, *c2[1:])],
                arrivals=[120],
                completions=[(180, True)],
                revisits=[(600, 1, 0)],
                complaints_naming_the_job=1,
            ),
        ),
        Case(**b, received=day(7, 9), triage=(7, "phone")),
        Case(**b, received=day(7, 10), triage=(8, "phone")),
        Case(
            **b,
            received=day(8, 0),
            triage=(20, "mail_in"),
            job=Job([(20, *c2[1:])], arrivals=[1440], completions=[(1500, True)], revisits=[(2900, 4, 9)]),
        ),
        Case(
            None,
            n["north"],
            n["baler"],
            received=day(9, 14),
            triage=(15, "onsite"),
            job=Job([(16, *c1[1:])], arrivals=[300], completions=[(360, True)], revisits=[(400, 5, 6)]),
        ),
    ]
    return cases, n


def field_work(case: Case, job_id: str) -> list:
    """The events dispatch and complaints would publish for the case."""
    job, rid = case.job, case.request_id
    keys = dict(dealer_id=case.dealer, region=case.region, product_line=case.line)
    events = [ev.complaint(case.at(600), request_id=rid) for _ in range(case.complaints_naming_the_request)]
    if job is None:
        return events
    events.append(ev.job_created(job_id, rid, case.at(case.triage[0]), **keys))
    tech = None
    for minutes, center, tech in job.assignments:
        events.append(ev.assigned(job_id, rid, case.at(minutes), center_id=center, technician_id=tech))
    events += [ev.arrived(job_id, rid, case.at(m), tech) for m in job.arrivals]
    events += [ev.completed(job_id, rid, case.at(m), tech, fixed) for m, fixed in job.completions]
    for kind, withdrawn in job.breaches:
        due = case.at(240)
        events.append(ev.breached(job_id, rid, due, kind=kind, recorded_at=utcnow()))
        if withdrawn:
            events.append(
                ev.breach_withdrawn(
                    job_id, rid, due, case.at(239), kind=kind, recorded_at=utcnow() + timedelta(seconds=2)
                )
            )
    events += [ev.revisit(job_id, rid, case.at(m), s, n) for m, s, n in job.revisits]
    events += [ev.complaint(case.at(700), job_id=job_id) for _ in range(job.complaints_naming_the_job)]
    return events


async def open_through_intake(client, agent, case: Case) -> None:
    body = {
        "dealer_id": case.dealer,
        "channel": "dealer" if case.dealer else "hotline",
        "customer": {"name": "Bo", "phone": "+49 170 5550101", "region": case.region},
        "product": {"serial": f"SN-{uuid.uuid4().hex[:10]}", "model": "M", "product_line": case.line},
        "purchase_date": "2025-01-01",
        "symptom": "noise",
        "occurred_at": rfc3339(case.received),
    }
    response = await client.post("/v1/service-requests", json=body, headers=agent)
    assert response.status_code == 201, response.text
    case.request_id = response.json()["id"]


async def steps_through_intake(client, agent, case: Case) -> None:
    url = f"/v1/service-requests/{case.request_id}"
    steps = []
    if case.escalate is not None:
        steps.append(("escalate", {"reason": "expert"}, case.escalate))
    if case.triage:
        steps.append(("triage", {"mode": case.triage[1]}, case.triage[0]))
    if case.cancel is not None:
        steps.append(("cancel", {"reason": "withdrawn"}, case.cancel))
    for action, body, minutes in steps:
        response = await client.post(
            f"{url}/{action}", json={**body, "occurred_at": rfc3339(case.at(minutes))}, headers=agent
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def played(analytics, event_bus, tmp_path_factory):
    """The scenario, played once for the module's tests."""
    base = (utcnow() - timedelta(days=22)).replace(hour=0, minute=0, second=0, microsecond=0)
    cases, names = scenario(base)
    settings = IntakeSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('intake')}/intake.db",
        kafka_bootstrap=event_bus,
        consumer_group=unique("intake-for-analytics"),
        relay_poll_interval_ms=50,
        log_json=False,
    )
    async with running(create_intake(settings, configure_logs=False)) as client:
        agent = bearer(settings, "agent")
        for case in cases:
            await open_through_intake(client, agent, case)
        work = [e for case in cases for e in field_work(case, case.job_id or str(uuid.uuid4()))]
        random.Random(7).shuffle(work)
        await publish(event_bus, *work[: len(work) // 2])
        for case in cases:
            await steps_through_intake(client, agent, case)
        await publish(event_bus, *work[len(work) // 2 :])
        # Everything reached analytics once every view, under every grouping keyed by the scenario's own
        # names, matches the oracle over the whole month.
        start, end = base - timedelta(days=30), base + timedelta(days=40)
        for view in ("throughput", "satisfaction", "scorecard"):
            for group_by in ("dealer", "center", "technician", "region", "product_line"):
                expected = getattr(oracle, view)(cases, start, end, group_by)
                expected.pop("direct", None)
                await eventually(
                    lambda view=view, group_by=group_by: analytics.rows(
                        view, group_by=group_by, from_=start.date().isoformat(), to=end.date().isoformat()
                    ),
                    until=lambda got, expected=expected: mine(got, set(expected)) == expected,
                    timeout=40,
                )
    return base, cases, names


async def scoped(analytics, dealer, view, start, end, group_by):
    response = await analytics.get(
        view,
        headers=analytics.auth("dealer", dealer_id=dealer),
        group_by=group_by,
        from_=start.date().isoformat(),
        to=end.date().isoformat(),
    )
    assert response.status_code == 200, response.text
    return {row["key"]: row for row in response.json()["rows"]}


def mine(rows: dict, keys: set[str]) -> dict:
    return {k: v for k, v in rows.items() if k in keys}


WINDOWS = {"whole month": (-30, 40), "days 3 to 8": (3, 8), "one day": (7, 8)}


@pytest.mark.parametrize("view", ["throughput", "satisfaction", "scorecard"])
@pytest.mark.parametrize("window", list(WINDOWS))
async def test_every_view_under_every_grouping_matches_the_oracle(played, analytics, view, window):
    base, cases, names = played
    start, end = (base + timedelta(days=d) for d in WINDOWS[window])
    compute = getattr(oracle, view)
    for group_by in GROUPINGS:
        if group_by in ("day", "month", "all"):
            for dealer in (names["DA"], names["DB"]):
                expected = compute([c for c in cases if c.dealer == dealer], start, end, group_by)
                assert await scoped(analytics, dealer, view, start, end, group_by) == expected, (group_by, dealer)
            continue
        expected = compute(cases, start, end, group_by)
        expected.pop("direct", None)  # other tests' requests without a dealer share that key
        got = await analytics.rows(view, group_by=group_by, from_=start.date().isoformat(), to=end.date().isoformat())
        assert mine(got, set(expected) | {k for k in got if k in names.values()}) == expected, group_by


async def test_the_direct_customer_is_keyed_direct_and_counted_in_its_region(played, analytics):
    base, cases, names = played
    rows = await analytics.rows(
        "throughput",
        group_by="region",
        from_=(base + timedelta(days=9)).date().isoformat(),
        to=(base + timedelta(days=10)).date().isoformat(),
    )
    assert rows[names["north"]]["received"] == 1
    dealers = await analytics.rows(
        "throughput",
        group_by="dealer",
        from_=(base + timedelta(days=9)).date().isoformat(),
        to=(base + timedelta(days=10)).date().isoformat(),
    )
    assert dealers["direct"]["received"] >= 1


async def test_the_dashboard_series_agree_with_the_throughput_view(played, analytics):
    base, cases, names = played
    headers = analytics.auth("dealer", dealer_id=names["DA"])
    start, end = base - timedelta(days=20), base + timedelta(days=17)
    params = {"from": start.date().isoformat(), "to": end.date().isoformat()}
    trend = (await analytics.client.get("/v1/views/trend", params=params, headers=headers)).json()["rows"]
    mine_ = [c for c in cases if c.dealer == names["DA"]]
    for row in trend:
        day_start = datetime.fromisoformat(row["day"]).replace(tzinfo=UTC)
        day_end = day_start + timedelta(days=1)
        assert row["received"] == sum(day_start <= c.received < day_end for c in mine_), row
        assert row["resolved"] == sum(c.resolved is not None and day_start <= c.resolved < day_end for c in mine_)
        assert row["backlog"] == oracle.throughput(mine_, day_start, day_end, "all").get("all", {}).get("backlog", 0)
    durations = (await analytics.client.get("/v1/views/durations", params=params, headers=headers)).json()["steps"]
    overall = oracle.throughput(mine_, start, end, "all")["all"]
    assert durations["resolve"]["median_minutes"] == overall["median_minutes_to_resolve"]
    assert durations["assign"]["p90_minutes"] == overall["p90_minutes_to_assign"]
    assert sum(b["count"] for b in durations["triage"]["buckets"]) == sum(
        1 for c in mine_ if c.triage and start <= c.received < end
    )


@pytest.mark.parametrize("window", list(WINDOWS))
async def test_the_month_hand_offs_and_rework_are_what_the_plan_implies(played, analytics, window):
    base, cases, names = played
    start, end = (base + timedelta(days=d) for d in WINDOWS[window])
    params = {"from_": start.date().isoformat(), "to": end.date().isoformat()}
    for group_by in ("dealer", "center", "technician", "region", "product_line"):
        expected = oracle.handoffs(cases, start, end, group_by)
        expected.pop("direct", None)
        response = await analytics.get("handoffs", group_by=group_by, **params)
        assert response.status_code == 200, response.text
        got: dict[str, list] = {}
        for row in response.json()["rows"]:
            if row["key"] in names.values():
                got.setdefault(row["key"], []).append(row)
        assert got == expected, group_by
        rework = oracle.rework(cases, start, end, group_by)
        rework.pop("direct", None)
        assert mine(await analytics.rows("rework", group_by=group_by, **params), set(names.values())) == rework
