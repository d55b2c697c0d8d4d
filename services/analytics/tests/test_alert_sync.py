"""The alert monitor's own parts: `sync_alerts` against a real SQLite database (what an evaluation leaves in the
active alerts and their history when alerts are raised, kept with a new value and cleared, several of each in one
call), and the evaluation's thread, which runs below the priority of the batch applies and the views."""

from __future__ import annotations

import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import select

from services.analytics.alerts import AlertCondition, AlertKind
from services.analytics.monitor import EVALUATION_NICENESS, lower_priority, sync_alerts
from services.analytics.tables import active_alerts, alert_history, metadata
from shared.eventstore.database import Database


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/alerts.db")
    await database.create_all(metadata)
    yield database
    await database.dispose()


def csat(key: str, value: int) -> AlertCondition:
    return AlertCondition(AlertKind.csat_below, "dealer", key, Fraction(value), Fraction(80), f"CSAT {value}")


def slow_triage(key: str, ids: tuple[str, ...]) -> AlertCondition:
    return AlertCondition(
        AlertKind.slow_handoff, "center", key, Fraction(95), Fraction(60), "slow", subject="triage", request_ids=ids
    )


async def evaluate(db: Database, conditions: list[AlertCondition], now: int) -> tuple[int, int]:
    async with db.transaction() as conn:
        return await sync_alerts(conn, conditions, now)


async def tables(db: Database) -> tuple[dict, list[dict]]:
    async with db.read() as conn:
        active = {(r.kind, r.scope, r.key): r._asdict() for r in await conn.execute(select(active_alerts))}
        history = [r._asdict() for r in await conn.execute(select(alert_history).order_by(alert_history.c.id))]
    return active, history


async def test_kept_alerts_take_the_new_values_and_cleared_ones_move_to_the_history(db):
    assert await evaluate(db, [csat("D1", 70), csat("D2", 60), csat("D3", 50), slow_triage("C1", ("r1", "r2"))], 100)
    assert await evaluate(db, [csat("D1", 75), csat("D4", 40)], 200) == (1, 3)

    active, history = await tables(db)
    assert set(active) == {("csat_below", "dealer", "D1"), ("csat_below", "dealer", "D4")}
    kept = active[("csat_below", "dealer", "D1")]
    assert (kept["value"], kept["detail"], kept["raised_at"], kept["updated_at"]) == (75.0, "CSAT 75", 100, 200)
    new = active[("csat_below", "dealer", "D4")]
    assert (new["value"], new["raised_at"], new["updated_at"]) == (40.0, 200, 200)
    assert sorted((h["kind"], h["key"], h["value"], h["raised_at"], h["cleared_at"]) for h in history) == [
        ("csat_below", "D2", 60.0, 100, 200),
        ("csat_below", "D3", 50.0, 100, 200),
        ("slow_handoff:triage", "C1", 95.0, 100, 200),
    ]
    assert [json.loads(h["request_ids"]) for h in history if h["key"] == "C1"] == [["r1", "r2"]]


async def test_an_evaluation_that_finds_nothing_clears_every_alert_and_one_that_finds_the_same_changes_nothing_else(
    db,
):
    assert await evaluate(db, [csat("D1", 70), slow_triage("C1", ("r1",))], 100) == (2, 0)
    assert await evaluate(db, [csat("D1", 70), slow_triage("C1", ("r1",))], 150) == (0, 0)
    active, history = await tables(db)
    assert {k: (a["raised_at"], a["updated_at"]) for k, a in active.items()} == {
        ("csat_below", "dealer", "D1"): (100, 150),
        ("slow_handoff:triage", "center", "C1"): (100, 150),
    }
    assert history == []

    assert await evaluate(db, [], 200) == (0, 2)
    active, history = await tables(db)
    assert active == {}
    assert sorted((h["key"], h["cleared_at"]) for h in history) == [("C1", 200), ("D1", 200)]


def nice_of_thread(thread_id: int) -> int:
    return int(Path(f"/proc/self/task/{thread_id}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a nice value per thread is Linux's")
def test_the_evaluation_thread_runs_at_a_lower_priority_and_the_other_threads_keep_theirs():
    here = nice_of_thread(threading.get_native_id())
    with ThreadPoolExecutor(1, initializer=lower_priority, initargs=(EVALUATION_NICENESS,)) as evaluator:
        evaluation = evaluator.submit(threading.get_native_id).result()
        assert nice_of_thread(evaluation) == min(here + EVALUATION_NICENESS, 19)
    with ThreadPoolExecutor(1) as other:
        assert nice_of_thread(other.submit(threading.get_native_id).result()) == here
    assert nice_of_thread(threading.get_native_id()) == here
    assert os.getpriority(os.PRIO_PROCESS, 0) == here
