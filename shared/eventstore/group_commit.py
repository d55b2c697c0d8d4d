"""Group commit on SQLite: the write transactions of one process that queue for the writer together share one
database transaction and one fsync.

SQLite has one writer at a time, so a process's write transactions already run one after another (FIFO on an
asyncio lock, see `Database`). Before, each paid its own BEGIN IMMEDIATE, COMMIT and fsync. Now each runs in a
SAVEPOINT of the group's transaction: its body's failure rolls back its own savepoint only, never the work of
the others. The group commits when nobody is queued behind its last member (or it reached `limit` members), and
every member's `transaction()` returns only after that COMMIT is durable: no caller answers before the fsync that
covers its writes (synchronous=FULL keeps its meaning). A COMMIT that fails fails every member of the group.

Who commits: the member leaving the lock with nobody queued behind it, or the group's *flusher* — a task queued
behind the members that were waiting when the group was left open — so that a queued caller that gives up
(cancelled, timed out) can never leave the group's members waiting for a COMMIT nobody runs."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from shared.eventstore import lean
from shared.eventstore.sqlite_driver import OneTripConnection

log = logging.getLogger(__name__)


_SAVEPOINT = "SAVEPOINT group_member"
_RELEASE = "RELEASE group_member"


def _driver(conn: AsyncConnection) -> OneTripConnection:
    driver = lean.lean_driver(conn)
    if driver is None:
        raise RuntimeError("a group commit runs on SQLite through sqlite_driver, inside its transaction")
    return driver


async def _savepoint(conn: AsyncConnection, driver: OneTripConnection, *statements: str) -> None:
    """A member's savepoint statements on the driver in one trip. SQLAlchemy's `begin_nested` compiled and ran
    each SAVEPOINT and RELEASE anew in a trip of its own (a tenth of a command's CPU); here the SAVEPOINT rides
    with the body's first statement and the RELEASE (or ROLLBACK TO) is one plain trip. The body's own
    `begin_nested`s are SQLAlchemy's, inside this one, closed by their context managers before it ends."""

    def run(db: lean.Driver) -> None:
        for statement in statements:
            db.raw.execute(statement)

    await lean.run(conn, driver, run)


class _WriterQueue:
    """The writer of this process, handed from task to task in arrival order (FIFO), with a bounded wait.

    What asyncio.Lock and a timeout per waiter did, at less cost under a deep queue (a command route's writers
    queue 64 deep under load): asyncio.Lock looks at every waiter on each acquire of a free lock, and
    `asyncio.timeout` arms and cancels a timer per waiter. Here a waiter is a future in a deque, handed the writer
    directly on release, and one timer, at the oldest waiter's deadline, fails those that waited too long."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.held = False
        self._waiters: deque[tuple[asyncio.Future[None], float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Hold the writer; TimeoutError after `timeout` seconds in the queue."""
        if not self.held and not self._waiters:
            self.held = True
            return
        loop = asyncio.get_running_loop()
        entry = (loop.create_future(), loop.time() + self.timeout)
        self._waiters.append(entry)
        if self._watchdog is None:
            self._watchdog = loop.call_at(entry[1], self._expire, loop)
        try:
            await entry[0]
        except BaseException:
            waiter = entry[0]
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed the writer as it was cancelled: pass it on
            elif entry in self._waiters:
                self._waiters.remove(entry)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter, _ = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # handed over: still held
                return
        self.held = False

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        now = loop.time()
        while self._waiters and self._waiters[0][1] <= now:
            waiter, _ = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(TimeoutError())
        if self._waiters:  # FIFO with one timeout: the oldest waiter's deadline is the next one
            self._watchdog = loop.call_at(self._waiters[0][1], self._expire, loop)


@dataclass(eq=False)
class _Group:
    conn: AsyncConnection
    transaction: AsyncTransaction
    members: list[asyncio.Future[None]] = field(default_factory=list)
    broken: bool = False  # a savepoint could not be rolled back: the connection is not to be trusted
    flusher: asyncio.Task[None] | None = None


class GroupCommit:
    """The write transactions of one SQLite database in one process, grouped (see the module's docstring)."""

    def __init__(self, engine: AsyncEngine, *, limit: int, timeout: float, on_commit: Callable[[], None]) -> None:
        self.engine, self.limit, self.timeout, self.on_commit = engine, limit, timeout, on_commit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer = _WriterQueue(timeout)
        self._open: _Group | None = None
        self.groups = self.members = 0  # committed so far: what the benchmark reports as the mean group size

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One member: its body runs in a savepoint of the open group (or of a new one); the block ends after
        the group's COMMIT, or raises the body's error (its savepoint rolled back) or the COMMIT's."""
        await self._acquire()
        committed: asyncio.Future[None] | None = None
        try:
            group = self._open if self._open is not None else await self._begin()
            driver = _driver(group.conn)
            driver.defer(_SAVEPOINT)  # runs with the body's first statement: no trip of its own
            try:
                yield group.conn
            except BaseException:
                try:
                    if not driver.take_back(_SAVEPOINT):  # the body wrote something: undo it
                        await _savepoint(group.conn, driver, "ROLLBACK TO group_member", _RELEASE)
                except BaseException:
                    group.broken = True
                    log.exception("rolling back a savepoint of a group commit failed; committing the group now")
                raise
            if not driver.take_back(_SAVEPOINT):
                # The RELEASE rides on the next trip to the writer (the next member's first statement, or the
                # COMMIT), not a trip of its own. Should it fail there, the driver says so and the group does
                # not commit (`_commit`): no member answers, and nothing is rolled back under another's feet.
                driver.defer(_RELEASE)
            committed = asyncio.get_running_loop().create_future()
            group.members.append(committed)
        finally:
            try:
                await self._leave()
            finally:
                self._writer.release()
        if committed is not None:
            await committed

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a queue serves one event loop (tests run several)
            self._loop, self._writer, self._open = loop, _WriterQueue(self.timeout), None
        try:
            await self._writer.acquire()
        except TimeoutError:
            raise TimeoutError(
                f"no write transaction ended within {self.timeout:.0f} s (a transaction() opened inside another?)"
            ) from None

    async def _begin(self) -> _Group:
        conn = await self.engine.connect()
        try:
            transaction = await conn.begin()  # BEGIN IMMEDIATE: see Database._sqlite_engine
        except BaseException:
            await conn.close()
            raise
        _driver(conn).deferred_failed = False
        self._open = _Group(conn, transaction)
        return self._open

    async def _leave(self) -> None:
        """Under the lock, as a member leaves: commit now, or leave the group open for those queued behind."""
        group = self._open
        if group is None:
            return
        if self._writer.waiting == 0 or group.broken or len(group.members) >= self.limit:
            await asyncio.shield(self._commit(group))
        elif group.flusher is None:
            group.flusher = asyncio.get_running_loop().create_task(self._flush(group))

    async def _flush(self, group: _Group) -> None:
        """Queued behind the group's last waiting member: commit the group if it is still open by then."""
        try:
            await self._acquire()
        except BaseException:  # shutting down, or the writer stalled: commit without the lock (the group is ours)
            if self._open is group:
                await asyncio.shield(self._commit(group))
            raise
        try:
            if self._open is group:
                await asyncio.shield(self._commit(group))
        finally:
            self._writer.release()

    async def _commit(self, group: _Group) -> None:
        """COMMIT (one fsync for every member), then let each member return; a failed COMMIT fails them all."""
        if self._open is group:
            self._open = None
        try:
            if group.broken:
                raise RuntimeError("a savepoint of this group commit could not be rolled back")
            if _driver(group.conn).deferred_failed:
                raise RuntimeError("a savepoint statement of this group commit failed")
            await group.transaction.commit()
        except BaseException as exc:
            for member in group.members:
                if not member.done():
                    member.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            with suppress(Exception):
                await group.transaction.rollback()
        else:
            self.groups += 1
            self.members += len(group.members)
            for member in group.members:
                if not member.done():
                    member.set_result(None)
            self.on_commit()
        finally:
            with suppress(Exception):
                await group.conn.close()
