"""One `Application` per service: the single entry point of its use cases (routes, tests, tools), of its
reactions to other services' facts (the consumer's handler table) and of its deadlines (the scheduler's
handler), each run in one unit of work over one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Actor
from shared.clock import Clock
from shared.contracts.base import EventData
from shared.domain import Aggregate, TimeRules
from shared.events import ActorId, IncomingEvent
from shared.eventstore.database import Database
from shared.eventstore.store import ConcurrencyError, EventStore, Metadata, caused_by, stored_streams
from shared.eventstore.tables import events
from shared.kernel.handlers import BoundHandler, bind_commands, bind_reactions
from shared.kernel.unit_of_work import HasDeadlines, Projections, UnitOfWork, clear, reconcile_deadlines
from shared.messaging.consumer import Handler
from shared.scheduling import Deadline, DeadlineHandler

R = TypeVar("R")

# What a service may do when its command broke a unique key (a race two commands ran past a check): the
# exception to raise instead (a Conflict naming the winner, say). None: the generic 409.
IntegrityConflict = Callable[[Any, Actor, IntegrityError], Awaitable[Exception | None]]
DeadlineReaction = Callable[[Deadline, UnitOfWork], Awaitable[None]]


@dataclass
class Kernel(Generic[R]):
    """Everything a service's Application is built from (its composition root fills it in)."""

    db: Database
    store: EventStore
    clock: Clock
    time_rules: TimeRules
    projections: Projections
    commands: Mapping[type, Callable[..., Awaitable[R]]]
    reactions: Mapping[type[EventData], Callable[..., Awaitable[None]]] = field(default_factory=dict)
    provided: Mapping[type, Any] = field(default_factory=dict)
    on_integrity_error: IntegrityConflict | None = None
    on_deadline: DeadlineReaction | None = None
    # Where a deadline's events sit in the causal chain (default: `deadline_metadata`).
    deadline_cause: Callable[[AsyncConnection, Deadline], Awaitable[Metadata]] | None = None


class Application(Generic[R]):
    """`handle(command, actor, metadata)` runs one command in one transaction: the handler loads and decides
    through a unit of work, which appends, projects and schedules on commit. A stream that moved on meanwhile
    (ConcurrencyError) or a unique key another command took first (IntegrityError) is a 409, and nothing of
    the command is left behind."""

    PER_CALL: tuple[type, ...] = (Actor, UnitOfWork, Metadata)

    def __init__(self, kernel: Kernel[R]) -> None:
        self.kernel = kernel
        self.db = kernel.db
        self.clock = kernel.clock
        provided: dict[type, Any] = {
            Clock: kernel.clock,
            TimeRules: kernel.time_rules,
            Database: kernel.db,
            EventStore: kernel.store,
            **kernel.provided,
        }
        self._commands = bind_commands(kernel.commands, per_call=self.PER_CALL, provided=provided)
        self._reactions = bind_reactions(kernel.reactions, per_call=(UnitOfWork, Metadata), provided=provided)

    @property
    def system_actor(self) -> ActorId:
        """Who the service's own reactions and deadlines are: `system:<service>`."""
        return ActorId.system(self.kernel.store.source)

    def unit_of_work(self, conn: AsyncConnection, metadata: Metadata, actor: ActorId) -> UnitOfWork:
        return UnitOfWork(
            conn,
            store=self.kernel.store,
            projections=self.kernel.projections,
            clock=self.kernel.clock,
            time_rules=self.kernel.time_rules,
            metadata=metadata,
            actor=actor,
        )

    async def handle(self, command: Any, actor: Actor, metadata: Metadata) -> R:
        """Run `command` for `actor`: its events record `actor.audit_id` as who caused them."""
        handler = self._commands.get(type(command))
        if handler is None:
            raise LookupError(f"no handler for {type(command).__name__}")
        try:
            async with self.db.transaction() as conn:
                uow = self.unit_of_work(conn, metadata, actor.audit_id)
                result: R = await handler(command, {Actor: actor, UnitOfWork: uow, Metadata: metadata})
                await uow.commit()
        except IntegrityError as exc:
            replacement = None
            if self.kernel.on_integrity_error is not None:
                replacement = await self.kernel.on_integrity_error(command, actor, exc)
            raise (
                replacement or ConcurrencyError(f"{type(command).__name__} collided with a concurrent change")
            ) from exc
        return result

    # --- reactions --------------------------------------------------------------------------------------

    @property
    def consumes(self) -> list[type[EventData]]:
        return list(self._reactions)

    def handler_table(self) -> dict[str, Handler]:
        """The consumer's table (event type → handler): each reaction runs in a unit of work over the
        consumer's transaction, its events chained to the cause (`caused_by`) and caused by the service itself
        (`system:<service>`; the cause's own actor stays on the cause)."""
        return {key.event_type: self._reaction(bound) for key, bound in self._reactions.items()}

    def _reaction(self, bound: BoundHandler) -> Handler:
        actor = self.system_actor  # the same for every reaction of the service: made once, not per event

        async def react(event: IncomingEvent[EventData], conn: AsyncConnection) -> None:
            metadata = caused_by(event.envelope)
            uow = self.unit_of_work(conn, metadata, actor)
            await bound(event, {UnitOfWork: uow, Metadata: metadata})
            await uow.commit()

        return react

    # --- deadlines --------------------------------------------------------------------------------------

    def deadline_handler(self) -> DeadlineHandler | None:
        """The scheduler's handler: the service's deadline reaction in a unit of work whose events continue
        the chain that scheduled the deadline (`deadline_metadata`), caused by the service itself
        (`system:<service>`)."""
        on_deadline = self.kernel.on_deadline
        if on_deadline is None:
            return None

        async def fire(deadline: Deadline, conn: AsyncConnection) -> None:
            cause = self.kernel.deadline_cause or deadline_metadata
            uow = self.unit_of_work(conn, await cause(conn, deadline), self.system_actor)
            await on_deadline(deadline, uow)
            await uow.commit()

        return fire

    # --- rebuild ----------------------------------------------------------------------------------------

    async def rebuild(self) -> dict[str, int]:
        return await rebuild_read_model(self.db, self.kernel.store, self.kernel.projections)


async def rebuild_read_model(db: Database, store: EventStore, projections: Projections) -> dict[str, int]:
    """The one rebuild: replace the read model with one folded afresh from the event store (each registered
    aggregate type's tables emptied, every stream projected as if new, in the order the streams began), and
    make sure every deadline an aggregate still watches is scheduled; return how many aggregates of each
    stream type were rebuilt."""
    kinds = projections.stream_types
    counts = dict.fromkeys(kinds, 0)
    async with db.transaction() as conn:
        # Read in the transaction that replaces the tables: a command committed in between (or, on SQLite, one
        # earlier in the same group commit) is in what is read, not cleared away unprojected.
        streams = await stored_streams(store, conn, stream_types=set(kinds))
        await clear(conn, reversed(projections.tables))
        for stream_id, stream in streams.items():
            aggregate: Aggregate = kinds[stream.stream_type].rehydrate(
                stream_id, stream.history, [e.actor for e in stream.envelopes]
            )
            projector = projections.projector_for(aggregate)
            if projector is not None:
                await projector(conn, aggregate, stream.envelopes)
            if isinstance(aggregate, HasDeadlines):
                await reconcile_deadlines(conn, stream_id, aggregate.due_deadlines())
            counts[stream.stream_type] += 1
    return counts


async def deadline_metadata(conn: AsyncConnection, deadline: Deadline) -> Metadata:
    """The default rule for a deadline's events: they continue the correlation of the chain that created the
    stream and are caused by the deadline itself (a stable id per deadline)."""
    correlation = (
        await conn.execute(
            select(events.c.correlation_id).where(events.c.stream_id == deadline.stream_id, events.c.version == 1)
        )
    ).scalar_one_or_none()
    cause = str(uuid.uuid5(uuid.NAMESPACE_URL, deadline.name))
    return Metadata(correlation_id=correlation or cause, causation_id=cause)
