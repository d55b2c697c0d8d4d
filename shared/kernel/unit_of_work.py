"""The unit of work every service uses: it remembers the aggregates a command (or reaction, or deadline) loaded
or created, and on commit appends their new events (event store + outbox), runs the projector registered for
each aggregate type (read-model rows) and reconciles their deadlines, all in the caller's one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeGuard, TypeVar, runtime_checkable

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Actor
from shared.clock import Clock
from shared.domain import Aggregate, NotFound, TimeRules
from shared.events import ActorId, EventEnvelope
from shared.eventstore import lean
from shared.eventstore.store import EventStore, Metadata, actor_text
from shared.scheduling import SCHEDULE, deadline_name, deadlines

A = TypeVar("A", bound=Aggregate)
A_contra = TypeVar("A_contra", bound=Aggregate, contravariant=True)


class Projector(Protocol[A_contra]):
    """Brings an aggregate's read-model rows up to date after `stored` (its newly appended events; the first
    one has `sequence == 1` when the aggregate is new, as in a rebuild) were appended."""

    def __call__(
        self, conn: AsyncConnection, aggregate: A_contra, stored: Sequence[EventEnvelope]
    ) -> Awaitable[None]: ...


@runtime_checkable
class HasDeadlines(Protocol):
    """An aggregate that says which deadlines a timer should watch for it now (kind → due time). The unit of
    work makes the pending deadlines of its stream exactly these: new kinds are scheduled, moved ones moved,
    the others cancelled (a fired deadline stays fired)."""

    def due_deadlines(self) -> Mapping[str, datetime]: ...


# A projector's statements without the trip: the writes that bring the aggregate's rows up to date after `stored`,
# as `lean.write` takes them (a statement and its row, or its rows). Pure: it runs on the writer's thread.
ProjectionWrites = Callable[[Any, Sequence[EventEnvelope]], Sequence[tuple[lean.Prepared, lean.WriteRows]]]


@dataclass(frozen=True)
class Projection:
    """How one aggregate type is seen: its projector and the read-model tables it alone writes (emptied by a
    rebuild before the streams are folded afresh). `writes`, when the projector is only `lean.write(conn,
    writes(aggregate, stored))`: on the lean path the unit of work runs those writes in the append's own trip to
    the writer (no trip of their own); elsewhere, and in a rebuild, the projector runs as it is."""

    aggregate_type: type[Aggregate]
    projector: Projector[Any]
    tables: tuple[Table, ...] = ()
    writes: ProjectionWrites | None = None


@dataclass
class Projections:
    """The projector of each aggregate type of a service (one registry per service)."""

    by_type: dict[type[Aggregate], Projection] = field(default_factory=dict)

    def register(
        self,
        aggregate_type: type[A],
        projector: Projector[A],
        *tables: Table,
        writes: Callable[[A, Sequence[EventEnvelope]], Sequence[tuple[lean.Prepared, lean.WriteRows]]] | None = None,
    ) -> None:
        """`writes`: the projector's statements as a pure function (see `Projection`); the projector must then
        be `lean.write(conn, writes(aggregate, stored))`, which the unit of work runs in the append's trip."""
        if aggregate_type in self.by_type:
            raise ValueError(f"{aggregate_type.__name__} already has a projector")
        self.by_type[aggregate_type] = Projection(aggregate_type, projector, tuple(tables), writes)

    def projector_for(self, aggregate: Aggregate) -> Projector[Any] | None:
        projection = self.by_type.get(type(aggregate))
        return projection.projector if projection else None

    @property
    def stream_types(self) -> dict[str, type[Aggregate]]:
        return {t.stream_type: t for t in self.by_type}

    @property
    def tables(self) -> list[Table]:
        return [table for projection in self.by_type.values() for table in projection.tables]


class UnitOfWork:
    """Aggregates in, events out, inside one transaction (`conn`). `metadata` is what caused the work (a
    command, an incoming event, a deadline) and `actor` who (the command's token, or the service itself for a
    reaction or a deadline): every event appended on commit carries both."""

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        store: EventStore,
        projections: Projections,
        clock: Clock,
        time_rules: TimeRules,
        metadata: Metadata,
        actor: ActorId,
    ) -> None:
        self.conn = conn
        self.store = store
        self.projections = projections
        self.clock = clock
        self.time_rules = time_rules
        self.metadata = metadata
        self.actor = actor
        self._seen: dict[str, Aggregate] = {}

    async def get(self, aggregate_type: type[A], aggregate_id: str) -> A:
        """The aggregate folded from its stream (once per unit of work), or NotFound (404)."""
        found = await self.find(aggregate_type, aggregate_id)
        if found is None:
            name = aggregate_type.stream_type.replace("_", " ")
            raise NotFound(f"{name} {aggregate_id} does not exist")
        return found

    async def get_visible(self, aggregate_type: type[A], aggregate_id: str, actor: Actor) -> A:
        """The aggregate if `actor` may see it (its `dealer_id`, and `technician_id` where it has one, by the
        one rule `Actor.sees`); otherwise the same 404 as for one that does not exist."""
        aggregate = await self.get(aggregate_type, aggregate_id)
        dealer_id = getattr(aggregate, "dealer_id", None)
        # Only what is assigned to a technician (a job) is confined to it; everything else by dealer alone.
        visible = (
            actor.sees(dealer_id, aggregate.technician_id)
            if hasattr(aggregate, "technician_id")
            else actor.sees_dealer(dealer_id)
        )
        if not visible:
            name = aggregate_type.stream_type.replace("_", " ")
            raise NotFound(f"{name} {aggregate_id} does not exist")
        return aggregate

    async def find(self, aggregate_type: type[A], aggregate_id: str) -> A | None:
        seen = self._seen.get(aggregate_id)
        if seen is not None:
            if not isinstance(seen, aggregate_type):
                return None
            return seen
        history, actors = await self.store.load_with_actors(self.conn, aggregate_id, aggregate_type.stream_type)
        if not history:
            return None
        aggregate: A = aggregate_type.rehydrate(aggregate_id, history, actors)
        aggregate.recorded_by(actor_text(self.actor))
        self._seen[aggregate_id] = aggregate
        return aggregate

    async def exists(self, aggregate_type: type[A], aggregate_id: str) -> bool:
        return await self.find(aggregate_type, aggregate_id) is not None

    def add(self, aggregate: A) -> A:
        """A new aggregate: its recorded events are appended on commit (a ConcurrencyError if its stream
        exists meanwhile)."""
        aggregate.recorded_by(actor_text(self.actor))
        self._seen[aggregate.id] = aggregate
        return aggregate

    def step_time(self, requested: datetime | None, after: Aggregate | None = None) -> datetime:
        """The one step-time rule: `requested` checked against the contract's bounds and not before `after`'s
        previous step, or now (`TimeRules.resolve`)."""
        previous = after.previous_step_at if after is not None else None
        return self.time_rules.resolve(requested, self.clock.now(), previous)

    async def commit(self) -> list[EventEnvelope]:
        """Append every remembered aggregate's new events, project them, reconcile their deadlines; return
        what was appended. The transaction itself is the caller's.

        On the lean path (SQLite) an aggregate's deadlines and, for a projection that declares its `writes`, its
        read-model rows go in the append's own trip to the writer, after the events and their outbox rows: one
        trip per aggregate. Errors are as step by step (a lost race is a ConcurrencyError before anything else
        runs; a projection's broken key an IntegrityError), and the caller's transaction rolls back the rest."""
        appended: list[EventEnvelope] = []
        on_driver = lean.lean_driver(self.conn) is not None
        for aggregate in list(self._seen.values()):
            pending = aggregate.take_pending()
            if not pending:
                continue
            wanted = aggregate.due_deadlines() if _has_deadlines(aggregate) else None
            projection = self.projections.by_type.get(type(aggregate))
            then: Callable[[lean.Driver, list[EventEnvelope]], None] | None = None
            projected_in_trip = on_driver and projection is not None and projection.writes is not None
            if on_driver and (wanted is not None or projected_in_trip):
                then = partial(
                    _after_append_on_driver,
                    aggregate=aggregate,
                    wanted=wanted,
                    writes=projection.writes if projected_in_trip and projection is not None else None,
                )
            stored = await self.store.append(
                self.conn,
                stream_id=aggregate.id,
                stream_type=aggregate.stream_type,
                expected_version=aggregate.version - len(pending),
                new_events=pending,
                metadata=self.metadata,
                actor=self.actor,
                then=then,
            )
            if wanted is not None and not on_driver:
                await reconcile_deadlines(self.conn, aggregate.id, wanted, new_stream=stored[0].sequence == 1)
            if projection is not None and not projected_in_trip:
                await projection.projector(self.conn, aggregate, stored)
            appended.extend(stored)
        return appended


_WATCHES_DEADLINES: dict[type[Aggregate], bool] = {}


def _has_deadlines(aggregate: Aggregate) -> TypeGuard[HasDeadlines]:
    """`isinstance(aggregate, HasDeadlines)`, decided once per type (a runtime protocol check walks the
    protocol's members on every call)."""
    found = _WATCHES_DEADLINES.get(type(aggregate))
    if found is None:
        found = _WATCHES_DEADLINES[type(aggregate)] = isinstance(aggregate, HasDeadlines)
    return found


def _after_append_on_driver(
    db: lean.Driver,
    stored: list[EventEnvelope],
    *,
    aggregate: Aggregate,
    wanted: Mapping[str, datetime] | None,
    writes: ProjectionWrites | None,
) -> None:
    """On the writer's thread, in the append's trip: the deadlines, then the read-model rows. A stream this
    append began watches nothing yet (deadlines are only written after its appends): no look-up of its own."""
    if wanted is not None:
        _reconcile_on_driver(db, stream_id=aggregate.id, wanted=wanted, new_stream=stored[0].sequence == 1)
    if writes is not None:
        lean.write_on(db, writes(aggregate, stored))


async def reconcile_deadlines(
    conn: AsyncConnection, stream_id: str, wanted: Mapping[str, datetime], *, new_stream: bool = False
) -> None:
    """Make the pending deadlines of `stream_id` exactly `wanted` (the one deadline mechanism). A `new_stream`
    (its first events were appended in this transaction) watches nothing yet: deadlines are written only here,
    after a stream's appends, so there is nothing of its own to look up."""
    driver = lean.lean_driver(conn)
    if driver is not None:  # the same statements in one trip to the writer's thread (lean.py)
        await lean.run(
            conn, driver, partial(_reconcile_on_driver, stream_id=stream_id, wanted=wanted, new_stream=new_stream)
        )
        return
    # Elsewhere the same statements, prepared on PostgreSQL's driver (lean.py chooses).
    watched: set[str] = (
        set() if new_stream else {kind for (kind,) in await lean.query(conn, _PENDING_KINDS, {"stream_id": stream_id})}
    )
    await lean.write(conn, _reconciling(stream_id, watched, wanted))


_PENDING_KINDS = lean.Prepared(
    select(deadlines.c.kind).where(deadlines.c.stream_id == bindparam("stream_id"), deadlines.c.state == "pending")
)
_CANCEL = lean.Prepared(
    update(deadlines)
    .where(deadlines.c.name == bindparam("deadline_name"), deadlines.c.state == "pending")
    .values(state="cancelled")
)
_SCHEDULE = lean.Prepared(SCHEDULE)


def _reconcile_on_driver(
    db: lean.Driver, *, stream_id: str, wanted: Mapping[str, datetime], new_stream: bool = False
) -> None:
    watched = set() if new_stream else {kind for (kind,) in db.execute(_PENDING_KINDS, {"stream_id": stream_id})}
    lean.write_on(db, _reconciling(stream_id, watched, wanted))


def _reconciling(
    stream_id: str, watched: set[str], wanted: Mapping[str, datetime]
) -> list[tuple[lean.Prepared, lean.WriteRows]]:
    """The writes that make the pending deadlines `watched` of `stream_id` exactly `wanted`: cancel the kinds no
    longer wanted, schedule (or move) the wanted ones."""
    writes: list[tuple[lean.Prepared, lean.WriteRows]] = []
    if gone := watched - set(wanted):
        writes.append((_CANCEL, [{"deadline_name": deadline_name(stream_id, kind)} for kind in sorted(gone)]))
    if wanted:
        rows = [
            {"name": deadline_name(stream_id, kind), "stream_id": stream_id, "kind": kind, "due_at": due}
            for kind, due in wanted.items()
        ]
        writes.append((_SCHEDULE, rows))
    return writes


async def clear(conn: AsyncConnection, tables: Iterable[Table]) -> None:
    for table in tables:
        await conn.execute(delete(table))


UnitOfWorkFactory = Callable[[AsyncConnection, Metadata, ActorId], UnitOfWork]
