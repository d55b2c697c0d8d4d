"""`python -m services.warranty.rebuild`: fold every product, policy, swap and claim afresh from warranty's
event store into its read model. The facts learned from intake and dispatch (requests, jobs, their timeline
entries) are projections of those topics, not of this store: replaying them means resetting the consumer
group's offsets. Warranty's own timeline entries are re-added where missing (they are keyed by event id)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from sqlalchemy import delete

from services.warranty import timeline
from services.warranty.application import timeline_context
from services.warranty.app import WarrantySettings
from services.warranty.claims import Claim
from services.warranty.domain import CoverageCheck, ProductLinePolicy, Unit
from services.warranty.read_model import claims, policies, products, save_views, swaps
from shared.domain import Aggregate
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.runtime import ServiceRuntime

KINDS: dict[str, type[Aggregate]] = {
    "product.registered": Unit, "part.swapped": Unit, "unit.repair_recorded": Unit,
    "unit.exchange_entitled": Unit, "unit.returned": Unit, "unit.exchanged": Unit, "return.rejected": Unit,
    "warranty_policy.set": ProductLinePolicy, "warranty.checked": CoverageCheck,
    "claim.submitted": Claim, "claim.approved": Claim, "claim.rejected": Claim,
}


async def _streams(db: Database, store: EventStore) -> dict[str, list[EventEnvelope]]:
    """Every stream's events in order, streams in the order they began."""
    streams: dict[str, list[EventEnvelope]] = defaultdict(list)
    after = 0
    async with db.read() as conn:
        while batch := await store.read_all(conn, after_position=after, limit=2000):
            for envelope in batch:
                streams[envelope.subject].append(envelope)
            after = batch[-1].position
    return streams


async def rebuild(db: Database, store: EventStore) -> int:
    """Replace the rows of warranty's own aggregates; return the number of streams folded."""
    streams = await _streams(db, store)
    async with db.transaction() as conn:
        for table in (products, policies, swaps, claims):
            await conn.execute(delete(table))
        for stream_id, envelopes in streams.items():
            kind = KINDS[envelopes[0].type]
            history = [(store.registry.get(e.type, e.schema_version).model_validate_json(e.data), e.time)
                       for e in envelopes]
            aggregate = kind.rehydrate(stream_id, history)
            await save_views(conn, aggregate, envelopes, db.is_sqlite)
            await timeline.add(conn, timeline.own_rows(envelopes, timeline_context(aggregate)), db.is_sqlite)
    return len(streams)


async def main() -> None:
    settings = WarrantySettings()
    db = ServiceRuntime.database(settings)
    try:
        count = await rebuild(db, EventStore(source=settings.service_name))
        print(f"rebuilt the read model from {count} streams")
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
