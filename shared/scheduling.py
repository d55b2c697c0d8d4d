"""Durable deadlines: what must happen when a time passes (an SLA breach, a complaint's escalation).

A service schedules a deadline in the same transaction as the events that create it, and cancels it the same
way. A scheduler loop fires due deadlines: the handler's effect (usually appending an event) and the
deadline's `fired` mark commit together, so a deadline fires exactly once, across restarts, and with several
replicas (a lease lets one scheduler fire at a time)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Index, Integer, String, Table, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import AdvancingClock, Clock, SystemClock
from shared.eventstore import lean
from shared.eventstore.database import Database
from shared.eventstore.tables import UtcDateTime, metadata
from shared.messaging.relay import Lease

log = logging.getLogger(__name__)

deadlines = Table(
    "deadlines",
    metadata,
    Column("name", String(160), primary_key=True),
    Column("stream_id", String(80), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("state", String(10), nullable=False),  # pending | fired | cancelled
)
Index("ix_deadlines_due", deadlines.c.state, deadlines.c.due_at)
# A stream's deadlines, which the unit of work reconciles on every commit: without it that look-up scanned every
# pending deadline of the service (3 ms at 10k pending on SQLite, growing with the backlog).
Index("ix_deadlines_stream", deadlines.c.stream_id, deadlines.c.state)


@dataclass(frozen=True)
class Deadline:
    name: str
    stream_id: str
    kind: str
    due_at: datetime


DeadlineHandler = Callable[[Deadline, AsyncConnection], Awaitable[None]]


def deadline_name(stream_id: str, kind: str) -> str:
    return f"{stream_id}:{kind}"


async def schedule(conn: AsyncConnection, *, stream_id: str, kind: str, due_at: datetime) -> None:
    """Schedule (or move) the pending deadline `kind` of `stream_id`; a fired one is left as it is."""
    await conn.execute(
        SCHEDULE, {"name": deadline_name(stream_id, kind), "stream_id": stream_id, "kind": kind, "due_at": due_at}
    )


# Plain SQL: SQLAlchemy 2.0 cannot cache an INSERT .. ON CONFLICT and recompiled it on every call. SQLite and
# PostgreSQL both take this form.
SCHEDULE = text(
    "INSERT INTO deadlines (name, stream_id, kind, due_at, state) VALUES (:name, :stream_id, :kind, :due_at, 'pending') "
    "ON CONFLICT (name) DO UPDATE SET due_at = excluded.due_at WHERE deadlines.state = 'pending'"
).bindparams(bindparam("due_at", type_=UtcDateTime()))


async def cancel(conn: AsyncConnection, *, stream_id: str, kind: str) -> None:
    await conn.execute(
        update(deadlines)
        .where(deadlines.c.name == deadline_name(stream_id, kind), deadlines.c.state == "pending")
        .values(state="cancelled")
    )


# The scheduler's poll, compiled once (lean.py): on PostgreSQL a prepared statement on the driver.
_DUE = lean.Prepared(
    select(deadlines.c.name, deadlines.c.stream_id, deadlines.c.kind, deadlines.c.due_at)
    .where(deadlines.c.state == "pending", deadlines.c.due_at <= bindparam("now", type_=UtcDateTime()))
    .order_by(deadlines.c.due_at)
    .limit(bindparam("limit", type_=Integer()))
)


class DeadlineScheduler:
    def __init__(
        self,
        db: Database,
        handler: DeadlineHandler,
        *,
        source: str,
        clock: Clock | None = None,
        poll_interval: float = 0.5,
        batch_size: int = 200,
        lease_seconds: float = 10.0,
    ) -> None:
        self.db = db
        self.handler = handler
        self.clock = clock or SystemClock()
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.lease = Lease(db, f"deadlines:{source}", f"{source}-{uuid.uuid4()}", lease_seconds)
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()
        self.fired = 0
        self.rounds_begun = self.rounds = 0  # rounds begun and ended (tests wait on them)
        if isinstance(self.clock, AdvancingClock):  # a test's clock: a jump in time is looked at at once
            self.clock.wake_on_advance(self.wake)

    def wake(self) -> None:
        """Look for due deadlines now rather than at the next poll."""
        self._woken.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            self.rounds_begun += 1
            try:
                if await self.lease.hold():
                    await self.fire_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("deadline scheduler round failed (%s); retrying", exc)
            self.rounds += 1
            await self._next_round()
        try:
            await self.lease.release()
        except Exception:
            pass

    async def _next_round(self) -> None:
        """Wait out the poll interval, unless stopped or woken first."""
        try:
            await asyncio.wait_for(self._woken.wait(), self.poll_interval)
        except TimeoutError:
            pass
        self._woken.clear()

    async def stop(self) -> None:
        self._stopping.set()
        self._woken.set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    async def fire_due(self) -> int:
        """Fire every pending deadline that is due now; return how many fired."""
        now = self.clock.now()
        async with self.db.read() as conn:  # a poll that finds nothing is this one statement
            due = [Deadline(*row) for row in await lean.query(conn, _DUE, {"now": now, "limit": self.batch_size})]
        fired = 0
        for deadline in due:
            try:
                async with self.db.transaction() as conn:
                    claimed = await conn.execute(
                        update(deadlines)
                        .where(deadlines.c.name == deadline.name, deadlines.c.state == "pending")
                        .values(state="fired")
                    )
                    if not claimed.rowcount:
                        continue  # cancelled or fired meanwhile
                    await self.handler(deadline, conn)
                fired += 1
            except Exception as exc:  # the mark rolled back with the effect: it fires on a later round
                log.warning("deadline %s could not fire yet: %s", deadline.name, exc)
        self.fired += fired
        return fired
