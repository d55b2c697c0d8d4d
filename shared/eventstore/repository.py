"""Load an aggregate from its stream and save what it recorded, inside the caller's transaction."""

from __future__ import annotations

from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain import Aggregate, NotFound
from shared.events import EventEnvelope
from shared.eventstore.store import EventStore, Metadata, NewEvent

A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    def __init__(self, conn: AsyncConnection, store: EventStore, aggregate_type: type[A]) -> None:
        self.conn = conn
        self.store = store
        self.aggregate_type = aggregate_type

    async def load(self, aggregate_id: str) -> A:
        history = await self.store.load(self.conn, aggregate_id, self.aggregate_type.stream_type)
        if not history:
            raise NotFound(f"{self.aggregate_type.stream_type.replace('_', ' ')} {aggregate_id} does not exist")
        return self.aggregate_type.rehydrate(aggregate_id, history)

    async def exists(self, aggregate_id: str) -> bool:
        return bool(await self.store.load(self.conn, aggregate_id, self.aggregate_type.stream_type))

    async def save(self, aggregate: A, metadata: Metadata) -> list[EventEnvelope]:
        """Append the aggregate's pending events after the version it was loaded at (optimistic)."""
        pending = aggregate.take_pending()
        if not pending:
            return []
        return await self.store.append(
            self.conn,
            stream_id=aggregate.id,
            stream_type=aggregate.stream_type,
            expected_version=aggregate.version - len(pending),
            new_events=[NewEvent(p.data, p.occurred_at) for p in pending],
            metadata=metadata,
        )
