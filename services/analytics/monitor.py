"""The alert monitor: re-evaluates the alert rules soon after the projection changes (and now and then, since
time alone moves the lookback window), raising new alerts and clearing those whose condition stopped. The
samples are summed in DuckDB; the alerts and their history live in the service's SQL database."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.analytics import process_sql
from services.analytics.alerts import AlertCondition, AlertPolicy, evaluate_alerts, finding_alerts
from services.analytics.metrics import MICROS_PER_DAY, Window, rounded, to_micros
from services.analytics.process import FindingRules
from services.analytics.projection import Projection
from services.analytics.sqlviews import alert_samples
from services.analytics.tables import active_alerts, alert_history
from services.analytics.views import GroupBy
from shared.clock import Clock
from shared.eventstore.database import Database

log = logging.getLogger(__name__)


# How much lower than the process's other threads the alert evaluation's thread runs (a nice increment). Only
# that thread's own Python work is lowered: the DuckDB worker threads its queries fan out to keep the process's
# priority, so what this buys is the evaluation staying off the event loop, not DuckDB yielding to it.
EVALUATION_NICENESS = 10


def lower_priority(niceness: int) -> None:
    """Lower the calling thread's CPU priority by `niceness` (on Linux the nice value is a thread's own, and it
    cannot be raised back without privileges: call it in a thread that keeps this work). Where the system has no
    per-thread nice value, or refuses, the thread keeps its priority: the evaluation is the same, only sooner."""
    if niceness <= 0 or not hasattr(os, "nice"):
        return
    try:
        os.nice(niceness)
    except OSError as exc:
        log.info("alert evaluation keeps its priority: %s", exc)


def pause_after(elapsed: float, *, min_interval: float, max_busy_share: float) -> float:
    """How long the monitor waits after an evaluation that took `elapsed` seconds: at least `min_interval`, and
    long enough that evaluating takes at most `max_busy_share` of the process's time. On a loaded machine an
    evaluation takes over a second (of wall time: ~0.1 s of CPU at 10k requests, ~0.3 s at 500k); re-running it
    every second after each change took two thirds of the process's time under steady load, and the batch
    applies (what makes a 201 visible in a view) waited behind it."""
    return max(min_interval, elapsed * (1 - max_busy_share) / max_busy_share)


async def sync_alerts(conn: AsyncConnection, conditions: list[AlertCondition], now: int) -> tuple[int, int]:
    """Make the active alerts the given conditions; return (raised, cleared).

    One statement per kind of change, each run for all its rows (an executemany): an evaluation names every
    alert that holds (at a year's history, dozens of process findings each time), and a statement per alert
    cost ~0.7 ms of the event loop's CPU each (~45 ms per evaluation for 62 alerts, measured) — the loop that
    also dispatches the live batches and answers the views."""
    current = {(r.kind, r.scope, r.key): r for r in await conn.execute(select(active_alerts))}
    wanted = {c.identity: c for c in conditions}
    updated, raised = [], []
    for identity, condition in wanted.items():
        values = dict(
            value=rounded(condition.value),
            threshold=rounded(condition.threshold),
            detail=condition.detail,
            updated_at=now,
            request_ids=None if condition.request_ids is None else json.dumps(list(condition.request_ids)),
        )
        kind, scope, key = identity
        if identity in current:
            updated.append({"alert_kind": kind, "alert_scope": scope, "alert_key": key, **values})
        else:
            raised.append({"kind": kind, "scope": scope, "key": key, "raised_at": now, **values})
    gone = [row for identity, row in current.items() if identity not in wanted]
    which = (
        active_alerts.c.kind == bindparam("alert_kind"),
        active_alerts.c.scope == bindparam("alert_scope"),
        active_alerts.c.key == bindparam("alert_key"),
    )
    if updated:
        await conn.execute(update(active_alerts).where(*which), updated)
    if raised:
        await conn.execute(active_alerts.insert(), raised)
    if gone:
        await conn.execute(
            delete(active_alerts).where(*which),
            [{"alert_kind": row.kind, "alert_scope": row.scope, "alert_key": row.key} for row in gone],
        )
        await conn.execute(
            alert_history.insert(),
            [
                dict(
                    kind=row.kind,
                    scope=row.scope,
                    key=row.key,
                    value=row.value,
                    threshold=row.threshold,
                    detail=row.detail,
                    raised_at=row.raised_at,
                    cleared_at=now,
                    request_ids=row.request_ids,
                )
                for row in gone
            ],
        )
    return len(raised), len(gone)


class AlertMonitor:
    def __init__(
        self,
        projection: Projection,
        db: Database,
        clock: Clock,
        policy: AlertPolicy,
        changed: asyncio.Event,
        *,
        min_interval: float,
        sweep_interval: float,
        max_busy_share: float = 0.2,
        finding_rules: FindingRules | None = None,
        niceness: int = EVALUATION_NICENESS,
    ) -> None:
        self.projection = projection
        self.finding_rules = finding_rules or FindingRules()
        self.db, self.clock, self.policy, self.changed = db, clock, policy, changed
        self.min_interval, self.sweep_interval = min_interval, sweep_interval
        self.max_busy_share = max_busy_share
        self.niceness = niceness
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = asyncio.Event()

    def _evaluator(self) -> ThreadPoolExecutor:
        """The evaluation's own thread, at a lower priority (`lower_priority`). The samples and findings are
        ~25 DuckDB statements (~0.1 s of CPU at 10k requests, ~0.3 s at 500k); on a busy machine, run at the
        priority of the batch applies and the views, an evaluation delayed the requests whose batch it
        overlapped by 0.2–0.5 s at the median (three runs of four of `deploy.bench.freshness`, at load 7–13). At a lower priority the scheduler
        runs the applies and the views first; the evaluation takes the CPU they leave."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix="alert-evaluation", initializer=lower_priority, initargs=(self.niceness,)
            )
        return self._executor

    async def evaluate(self) -> tuple[int, int]:
        """Evaluate every rule now; return (raised, cleared)."""
        now = to_micros(self.clock.now())
        since = now - self.policy.lookback_days * MICROS_PER_DAY

        def conditions() -> list[AlertCondition]:
            with self.projection.reading() as (cur, tables):
                # The process findings over the requests received in the lookback, per dealer and center.
                findings = {
                    scope.value: process_sql.finding_rows(
                        cur, tables, Window(since, now + 1), scope, rules=self.finding_rules
                    )
                    for scope in (GroupBy.dealer, GroupBy.center)
                }
                samples = alert_samples(cur, tables, since, now)
            return evaluate_alerts(samples, self.policy) + finding_alerts(findings)

        found = await asyncio.get_running_loop().run_in_executor(self._evaluator(), conditions)
        async with self.db.transaction() as conn:
            return await sync_alerts(conn, found, now)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self.changed.wait(), self.sweep_interval)
            except TimeoutError:
                pass
            if self._stopping.is_set():
                return
            self.changed.clear()
            started = asyncio.get_running_loop().time()
            try:
                raised, cleared = await self.evaluate()
                if raised or cleared:
                    log.info("alerts: %d raised, %d cleared", raised, cleared)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away for a moment; the next round catches up
                log.warning("alert evaluation failed: %s", exc)
            elapsed = asyncio.get_running_loop().time() - started
            await self._pause(pause_after(elapsed, min_interval=self.min_interval, max_busy_share=self.max_busy_share))

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        self._stopping.set()
        self.changed.set()
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # an evaluation under way ends on its own
            self._executor = None
