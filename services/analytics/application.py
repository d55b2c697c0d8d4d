"""analytics' read side: each view loads the facts it needs — live from the fact tables, or, `as_of` a past
moment, folded afresh from the events recorded by then — and hands them to the pure view functions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.analytics.facts import RequestFact, RevisitFact, fold_all
from services.analytics.metrics import Window, from_micros, to_micros
from services.analytics.monitor import AlertMonitor
from services.analytics.replay import RebuildReport, RebuildRunning, rebuild
from services.analytics.store import (
    cohort_condition,
    load_events,
    open_since_condition,
    read_state,
    requests_where,
    revisits_in,
    throughput_condition,
)
from services.analytics.tables import active_alerts, alert_history, generation
from services.analytics.views import (
    GroupBy,
    duration_histograms,
    satisfaction_rows,
    scorecard_rows,
    throughput_rows,
    trend_rows,
)
from shared.clock import Clock, rfc3339
from shared.contracts.base import Registry
from shared.eventstore.database import Database


@dataclass
class Scope:
    """Whose numbers: everyone's, or one dealer's requests only (a dealer token)."""

    dealer_key: str | None = None


@dataclass
class RebuildStatus:
    state: str = "idle"  # idle | running | succeeded | failed
    started_at: str | None = None
    finished_at: str | None = None
    report: dict | None = None
    error: str | None = None


class AnalyticsViews:
    """The views, alerts and rebuild behind the routes (one per app, on `app.state.views`)."""

    def __init__(self, db: Database, clock: Clock, *, bootstrap: str, registry: Registry, batch_size: int,
                 monitor: AlertMonitor) -> None:
        self.db, self.clock = db, clock
        self.bootstrap, self.registry, self.batch_size = bootstrap, registry, batch_size
        self.monitor = monitor
        self.rebuild_status = RebuildStatus()
        self._rebuild_task: asyncio.Task | None = None

    # --- facts -----------------------------------------------------------------------------------------

    async def _facts(self, as_of: datetime | None, scope: Scope, requests_condition, revisit_window: Window | None
                     ) -> tuple[list[RequestFact], list[RevisitFact]]:
        async with self.db.read() as conn:
            tables = generation((await read_state(conn)).active)
            if as_of is not None:
                events = await load_events(conn, tables, recorded_until=to_micros(as_of))
            else:
                requests = (await requests_where(conn, tables, requests_condition(tables), scope.dealer_key)
                            if requests_condition else [])
                revisits = (await revisits_in(conn, tables, revisit_window, scope.dealer_key)
                            if revisit_window else [])
                return requests, revisits
        # Folding a long history takes a while: in a thread, so the consumer and other requests keep their turns.
        requests, revisits = await asyncio.to_thread(fold_all, events)
        if scope.dealer_key is not None:
            requests = [f for f in requests if f.dealer_key == scope.dealer_key]
            revisits = [r for r in revisits if r.dealer_key == scope.dealer_key]
        return requests, revisits

    # --- views -----------------------------------------------------------------------------------------

    async def throughput(self, window: Window, group_by: GroupBy, as_of: datetime | None, scope: Scope) -> list[dict]:
        requests, _ = await self._facts(as_of, scope, lambda t: throughput_condition(t, window), None)
        return throughput_rows(requests, window, group_by)

    async def satisfaction(self, window: Window, group_by: GroupBy, as_of: datetime | None,
                           scope: Scope) -> list[dict]:
        _, revisits = await self._facts(as_of, scope, None, window)
        return satisfaction_rows(revisits, window, group_by)

    async def scorecard(self, window: Window, group_by: GroupBy, as_of: datetime | None, scope: Scope) -> list[dict]:
        requests, revisits = await self._facts(as_of, scope, lambda t: cohort_condition(t, window), window)
        return scorecard_rows(requests, revisits, window, group_by)

    async def trend(self, window: Window, as_of: datetime | None, scope: Scope) -> list[dict]:
        requests, _ = await self._facts(as_of, scope, lambda t: open_since_condition(t, window.start, window.end),
                                        None)
        return trend_rows(requests, window)

    async def durations(self, window: Window, as_of: datetime | None, scope: Scope) -> dict[str, Any]:
        requests, _ = await self._facts(as_of, scope, lambda t: cohort_condition(t, window), None)
        return duration_histograms(requests, window)

    # --- alerts ----------------------------------------------------------------------------------------

    async def alerts(self, *, cleared: bool, scope: Scope, limit: int, offset: int) -> tuple[list[dict], bool]:
        table = alert_history if cleared else active_alerts
        query = select(table)
        if scope.dealer_key is not None:
            query = query.where(table.c.scope == "dealer", table.c.key == scope.dealer_key)
        order = table.c.cleared_at.desc() if cleared else table.c.raised_at.desc()
        query = query.order_by(order, table.c.kind, table.c.scope, table.c.key).offset(offset).limit(limit + 1)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        items = [_alert(row, cleared) for row in rows[:limit]]
        return items, len(rows) > limit

    # --- rebuild ---------------------------------------------------------------------------------------

    def start_rebuild(self) -> RebuildStatus:
        """Start a rebuild in the background; RebuildRunning when one is under way in this process."""
        if self._rebuild_task is not None and not self._rebuild_task.done():
            raise RebuildRunning("a rebuild is already running")
        self.rebuild_status = RebuildStatus("running", started_at=rfc3339(self.clock.now()))
        self._rebuild_task = asyncio.create_task(self._run_rebuild(), name="analytics-rebuild")
        return self.rebuild_status

    async def _run_rebuild(self) -> None:
        status = self.rebuild_status
        try:
            report: RebuildReport = await rebuild(self.db, self.bootstrap, registry=self.registry,
                                                  batch_size=self.batch_size)
            status.state, status.report = "succeeded", report.as_dict()
            self.monitor.changed.set()
        except Exception as exc:
            status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
        status.finished_at = rfc3339(self.clock.now())

    async def stop(self) -> None:
        if self._rebuild_task is not None and not self._rebuild_task.done():
            self._rebuild_task.cancel()
            await asyncio.gather(self._rebuild_task, return_exceptions=True)


def _alert(row, cleared: bool) -> dict:
    item = {
        "kind": row.kind, "scope": row.scope, "key": row.key, "value": row.value, "threshold": row.threshold,
        "detail": row.detail, "raised_at": rfc3339(from_micros(row.raised_at)),
    }
    if cleared:
        item["cleared_at"] = rfc3339(from_micros(row.cleared_at))
    return item
