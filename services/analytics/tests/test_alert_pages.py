"""Alerts page by key, newest first: every alert once across the pages, in order, even when several share a
moment and when new ones are raised between two pages (an offset would repeat or skip rows then)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from services.analytics.application import AnalyticsViews, Scope
from services.analytics.tables import active_alerts, alert_history, metadata
from shared.clock import SystemClock
from shared.contracts.base import REGISTRY
from shared.eventstore.database import Database
from shared.eventstore.tables import service_schema
from shared.http.pagination import decode_cursor


@pytest.fixture
async def views(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/alerts.db")
    await db.create_all(service_schema(metadata))
    # Only the SQL database is used by the alert lists.
    yield AnalyticsViews(None, db, SystemClock(), bootstrap="", registry=REGISTRY, batch_size=1, monitor=None)
    await db.dispose()


def alert(kind: str, key: str, raised_at: int, **more) -> dict:
    return dict(kind=kind, scope="dealer", key=key, value=1.0, threshold=2.0, detail="d", raised_at=raised_at, **more)


async def add(views: AnalyticsViews, table, *rows: dict) -> None:
    async with views.db.transaction() as conn:
        await conn.execute(insert(table), list(rows))


async def every_page(views: AnalyticsViews, *, cleared: bool, limit: int, between=None) -> list[tuple]:
    seen, after = [], None
    while True:
        page = await views.alerts(cleared=cleared, scope=Scope(), limit=limit, after=after)
        seen += [(a["kind"], a["key"], a.get("cleared_at", a["raised_at"])) for a in page.items]
        if page.next_cursor is None:
            return seen
        after = decode_cursor(page.next_cursor)
        if between is not None:
            await between()
            between = None


def active(kind: str, key: str, raised_at: int) -> dict:
    return alert(kind, key, raised_at, updated_at=raised_at)


async def test_active_alerts_sharing_a_moment_each_appear_once_newest_first(views):
    await add(views, active_alerts, *(active(kind, f"D{i}", 1_000 * (i % 3)) for i in range(7) for kind in ("a", "b")))
    seen = await every_page(views, cleared=False, limit=3)
    assert len(seen) == len(set(seen)) == 14
    everything = await views.alerts(cleared=False, scope=Scope(), limit=500, after=None)
    assert seen == [(a["kind"], a["key"], a["raised_at"]) for a in everything.items]


async def test_an_alert_raised_between_two_pages_neither_repeats_nor_hides_an_older_one(views):
    await add(views, active_alerts, *(active("a", f"D{i}", 1_000 + i) for i in range(6)))

    async def newer() -> None:
        await add(views, active_alerts, active("a", "NEW", 9_000))

    seen = await every_page(views, cleared=False, limit=2, between=newer)
    assert [key for _, key, _ in seen] == ["D5", "D4", "D3", "D2", "D1", "D0"]


async def test_cleared_alerts_page_by_their_clearing_newest_first(views):
    await add(
        views,
        alert_history,
        *(alert("a", f"D{i}", 10, cleared_at=1_000_000 * (i % 2)) for i in range(5)),
    )
    seen = await every_page(views, cleared=True, limit=2)
    assert len(seen) == len(set((k, key) for k, key, _ in seen)) == 5
    assert [key for _, key, _ in seen] == ["D3", "D1", "D4", "D2", "D0"]
