"""`python -m services.warranty.rebuild`: fold every product, policy, swap and claim afresh from warranty's
event store into its read model. The facts learned from intake and dispatch (requests, jobs, their timeline
entries) are projections of those topics, not of this store: replaying them means resetting the consumer
group's offsets. Warranty's own timeline entries are re-added where missing (they are keyed by event id)."""

from __future__ import annotations

from sqlalchemy import delete

from services.warranty import timeline
from services.warranty.application import timeline_context
from services.warranty.app import WarrantySettings
from services.warranty.claims import Claim
from services.warranty.domain import CoverageCheck, ProductLinePolicy, Unit
from services.warranty.read_model import claims, policies, products, save_views, swaps
from shared.domain import Aggregate
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore, stored_streams
from shared.runtime import rebuild_from_event_store

KINDS: dict[str, type[Aggregate]] = {
    "product.registered": Unit, "part.swapped": Unit, "unit.repair_recorded": Unit,
    "unit.exchange_entitled": Unit, "unit.returned": Unit, "unit.exchanged": Unit, "return.rejected": Unit,
    "warranty_policy.set": ProductLinePolicy, "warranty.checked": CoverageCheck,
    "claim.submitted": Claim, "claim.approved": Claim, "claim.rejected": Claim,
}


async def rebuild(db: Database, store: EventStore) -> int:
    """Replace the rows of warranty's own aggregates; return the number of streams folded."""
    async with db.read() as conn:
        streams = await stored_streams(store, conn)
    async with db.transaction() as conn:
        for table in (products, policies, swaps, claims):
            await conn.execute(delete(table))
        for stream_id, stream in streams.items():
            aggregate = KINDS[stream.envelopes[0].type].rehydrate(stream_id, stream.history)
            await save_views(conn, aggregate, stream.envelopes, db.is_sqlite)
            await timeline.add(conn, timeline.own_rows(stream.envelopes, timeline_context(aggregate)),
                               db.is_sqlite)
    return len(streams)


if __name__ == "__main__":
    rebuild_from_event_store(WarrantySettings(), rebuild,
                             lambda count: f"rebuilt the read model from {count} streams")
