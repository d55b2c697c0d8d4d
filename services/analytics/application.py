"""analytics' read side: each view runs its SQL over the versioned facts in DuckDB — the versions that hold now,
or `as_of` a past moment the versions that held then — in a worker thread with a cursor of its own, so that the
event loop (the consumer, other requests) keeps its turns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, tuple_

from services.analytics.metrics import Window, from_micros, to_micros
from services.analytics.monitor import AlertMonitor
from services.analytics.projection import Projection
from services.analytics.replay import RebuildReport, RebuildRunning, rebuild
from services.analytics.tables import active_alerts, alert_history
from services.analytics.views import GroupBy
from shared.clock import Clock, rfc3339
from shared.contracts.base import Registry
from shared.eventstore.database import Database
from shared.http.pagination import Page


@dataclass
class Scope:
    """Whose numbers: everyone's, or one dealer's requests only (a dealer token), by the requests' real
    dealer_id — a dealer-less request is in no dealer's scope, whatever a dealer's id is."""

    dealer_id: str | None = None


@dataclass(frozen=True)
class ViewQuery:
    """What a view is asked: the window of days, the moment its numbers stand at (`as_of`: only events recorded
    by then; None: now), whose requests (the caller's scope), and for grouped views the grouping."""

    window: Window
    as_of: datetime | None
    scope: Scope
    group_by: GroupBy | None = None


@dataclass
class RebuildStatus:
    state: str = "idle"  # idle | running | succeeded | failed
    started_at: str | None = None
    finished_at: str | None = None
    report: dict | None = None
    error: str | None = None


class AnalyticsViews:
    """The views, alerts and rebuild behind the routes (one per app, on `app.state.views`)."""

    def __init__(
        self,
        projection: Projection,
        db: Database,
        clock: Clock,
        *,
        bootstrap: str,
        registry: Registry,
        batch_size: int,
        monitor: AlertMonitor,
    ) -> None:
        self.projection, self.db, self.clock = projection, db, clock
        self.bootstrap, self.registry, self.batch_size = bootstrap, registry, batch_size
        self.monitor = monitor
        self.rebuild_status = RebuildStatus()
        self._rebuild_task: asyncio.Task | None = None

    async def _query(self, view: Callable[..., Any], *args, **kwargs) -> Any:
        def run():
            with self.projection.reading() as (cur, tables):
                return view(cur, tables, *args, **kwargs)

        return await asyncio.to_thread(run)

    @staticmethod
    def _moment(as_of: datetime | None) -> int | None:
        return None if as_of is None else to_micros(as_of)

    # --- views -----------------------------------------------------------------------------------------

    async def view(self, rows: Callable[..., Any], query: ViewQuery, **options: Any) -> Any:
        """Run one view's SQL function over a snapshot: `rows(cur, tables, window, [group_by,] as_of, dealer_id,
        **options)` (the grouped views take `group_by`; the others do not)."""
        grouping = () if query.group_by is None else (query.group_by,)
        moment = self._moment(query.as_of)
        return await self._query(rows, query.window, *grouping, moment, query.scope.dealer_id, **options)

    # --- alerts ----------------------------------------------------------------------------------------

    async def alerts(self, *, cleared: bool, scope: Scope, limit: int, after: list[Any] | None) -> Page[dict]:
        """Newest first, a keyset page: active alerts by (raised_at desc, kind, scope, key), cleared ones by
        (cleared_at desc, id desc); `after` is the key of the last alert of the previous page."""
        if cleared:
            table, newest_first = alert_history, (alert_history.c.cleared_at.desc(), alert_history.c.id.desc())
        else:
            table, newest_first = (
                active_alerts,
                (
                    active_alerts.c.raised_at.desc(),
                    active_alerts.c.kind,
                    active_alerts.c.scope,
                    active_alerts.c.key,
                ),
            )
        query = select(table).order_by(*newest_first).limit(limit + 1)
        if scope.dealer_id is not None:
            query = query.where(table.c.scope == "dealer", table.c.key == scope.dealer_id)
        if after is not None and cleared:
            cleared_at, row_id = after
            query = query.where(
                or_(table.c.cleared_at < cleared_at, and_(table.c.cleared_at == cleared_at, table.c.id < row_id))
            )
        elif after is not None:
            raised_at, *rest = after
            query = query.where(
                or_(
                    table.c.raised_at < raised_at,
                    and_(
                        table.c.raised_at == raised_at, tuple_(table.c.kind, table.c.scope, table.c.key) > tuple_(*rest)
                    ),
                )
            )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()

        def key(row: Any) -> list[Any]:
            return [row.cleared_at, row.id] if cleared else [row.raised_at, row.kind, row.scope, row.key]

        return Page[dict].of(rows, limit, item=lambda row: _alert(row, cleared), key=key)

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
            report: RebuildReport = await rebuild(
                self.projection, self.bootstrap, registry=self.registry, batch_size=self.batch_size
            )
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
        "kind": row.kind,
        "scope": row.scope,
        "key": row.key,
        "value": row.value,
        "threshold": row.threshold,
        "detail": row.detail,
        "raised_at": rfc3339(from_micros(row.raised_at)),
    }
    if row.request_ids is not None:  # a process finding: the requests behind it
        item["request_ids"] = json.loads(row.request_ids)
    if cleared:
        item["cleared_at"] = rfc3339(from_micros(row.cleared_at))
    return item
