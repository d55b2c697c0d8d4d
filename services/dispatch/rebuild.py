"""`python -m services.dispatch.rebuild`: fold every job, center and technician afresh from the event store into
the read model, and make sure every deadline a job still watches is scheduled.

The request projection (`dispatch_requests`) holds intake's facts, not dispatch's: it is rebuilt by replaying
`intake.events` (a new consumer group), not from here."""

from __future__ import annotations

from sqlalchemy import delete

from services.dispatch.domain import Job
from services.dispatch.read_model import (
    dispatch_centers,
    dispatch_jobs,
    dispatch_technician_skills,
    dispatch_technicians,
    save_center,
    save_job,
    save_technician,
)
from services.dispatch.workforce import ServiceCenter, Technician
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore, stored_streams
from shared.scheduling import schedule

AGGREGATES = {Job.stream_type: Job, ServiceCenter.stream_type: ServiceCenter, Technician.stream_type: Technician}


async def rebuild(db: Database, store: EventStore) -> dict[str, int]:
    """Replace the read tables with ones folded from the events; return how many of each were rebuilt."""
    async with db.read() as conn:
        streams = await stored_streams(store, conn, stream_types=set(AGGREGATES))
    counts = {name: 0 for name in AGGREGATES}
    async with db.transaction() as conn:
        for table in (dispatch_jobs, dispatch_centers, dispatch_technicians, dispatch_technician_skills):
            await conn.execute(delete(table))
        for stream_id, stream in streams.items():
            kind = stream.stream_type
            aggregate = AGGREGATES[kind].rehydrate(stream_id, stream.history)
            position = stream.first_position
            if isinstance(aggregate, Job):
                await save_job(conn, aggregate, position)
                for sla_kind, due in aggregate.pending_deadlines().items():
                    if due is not None:
                        await schedule(conn, stream_id=stream_id, kind=sla_kind.value, due_at=due)
            elif isinstance(aggregate, ServiceCenter):
                await save_center(conn, aggregate, position)
            else:
                await save_technician(conn, aggregate, position)
            counts[kind] += 1
    return counts


if __name__ == "__main__":
    from services.dispatch.app import DispatchSettings
    from shared.runtime import rebuild_from_event_store

    rebuild_from_event_store(DispatchSettings(), rebuild,
                             lambda counts: "rebuilt " + ", ".join(f"{n} {kind}s" for kind, n in counts.items()))
