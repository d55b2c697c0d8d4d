"""`python -m services.dispatch.rebuild`: fold every job, center and technician afresh from the event store into
the read model, and make sure every deadline a job still watches is scheduled.

The request projection (`dispatch_requests`) holds intake's facts, not dispatch's: it is rebuilt by replaying
`intake.events` (a new consumer group), not from here."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from sqlalchemy import delete, select

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
from shared.eventstore.store import EventStore
from shared.eventstore.tables import events
from shared.scheduling import schedule

AGGREGATES = {Job.stream_type: Job, ServiceCenter.stream_type: ServiceCenter, Technician.stream_type: Technician}


async def rebuild(db: Database, store: EventStore) -> dict[str, int]:
    """Replace the read tables with ones folded from the events; return how many of each were rebuilt."""
    histories: dict[str, list] = defaultdict(list)
    first_position: dict[str, int] = {}
    after = 0
    async with db.read() as conn:
        while batch := await store.read_all(conn, after_position=after, limit=2000):
            for envelope in batch:
                model = store.registry.get(envelope.type, envelope.schema_version)
                histories[envelope.subject].append((model.model_validate_json(envelope.data), envelope.time))
                first_position.setdefault(envelope.subject, envelope.position)
            after = batch[-1].position
        rows = await conn.execute(select(events.c.stream_id, events.c.stream_type).where(events.c.version == 1))
        kinds = {row.stream_id: row.stream_type for row in rows}
    counts = {name: 0 for name in AGGREGATES}
    async with db.transaction() as conn:
        for table in (dispatch_jobs, dispatch_centers, dispatch_technicians, dispatch_technician_skills):
            await conn.execute(delete(table))
        for stream_id, history in histories.items():
            kind = kinds[stream_id]
            aggregate = AGGREGATES[kind].rehydrate(stream_id, history)
            position = first_position[stream_id]
            if isinstance(aggregate, Job):
                await save_job(conn, aggregate, position)
                for sla_kind, due in aggregate.pending_deadlines().items():
                    if due is not None:
                        await schedule(conn, stream_id=stream_id, kind=sla_kind.value, due_at=due,
                                       is_sqlite=db.is_sqlite)
            elif isinstance(aggregate, ServiceCenter):
                await save_center(conn, aggregate, position)
            else:
                await save_technician(conn, aggregate, position)
            counts[kind] += 1
    return counts


async def main() -> None:
    from services.dispatch.app import SERVICE, DispatchSettings
    from shared.runtime import ServiceRuntime

    db = ServiceRuntime.database(DispatchSettings())
    try:
        counts = await rebuild(db, EventStore(source=SERVICE))
        print("rebuilt " + ", ".join(f"{n} {kind}s" for kind, n in counts.items()))
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
