"""`python -m services.dispatch.rebuild`: fold every job, center and technician afresh from the event store into
the read model, and make sure every deadline a job still watches is scheduled.

The request projection (`dispatch_requests`) holds intake's facts, not dispatch's: it is rebuilt by replaying
`intake.events` (a new consumer group), not from here."""

from __future__ import annotations

from services.dispatch.read_model import PROJECTIONS
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.kernel import rebuild_read_model


async def rebuild(db: Database, store: EventStore) -> dict[str, int]:
    """Replace the read tables with ones folded from the events; return how many of each were rebuilt."""
    return await rebuild_read_model(db, store, PROJECTIONS)


if __name__ == "__main__":
    from services.dispatch.app import DispatchSettings
    from shared.runtime import rebuild_from_event_store

    rebuild_from_event_store(
        DispatchSettings(), rebuild, lambda counts: "rebuilt " + ", ".join(f"{n} {kind}s" for kind, n in counts.items())
    )
