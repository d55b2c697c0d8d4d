"""`python -m services.warranty.rebuild`: fold every product, policy, swap and claim afresh from warranty's
event store into its read model. The facts learned from intake and dispatch (requests, jobs, their timeline
entries) are projections of those topics, not of this store: replaying them means resetting the consumer
group's offsets. Warranty's own timeline entries are re-added where missing (they are keyed by event id)."""

from __future__ import annotations

from services.warranty.app import WarrantySettings
from services.warranty.projections import PROJECTIONS
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.kernel import rebuild_read_model
from shared.runtime import rebuild_from_event_store


async def rebuild(db: Database, store: EventStore) -> int:
    """Replace the rows of warranty's own aggregates; return the number of streams folded."""
    return sum((await rebuild_read_model(db, store, PROJECTIONS)).values())


if __name__ == "__main__":
    rebuild_from_event_store(WarrantySettings(), rebuild, lambda count: f"rebuilt the read model from {count} streams")
