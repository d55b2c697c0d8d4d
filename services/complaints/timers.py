"""What a due deadline does: the runtime's DeadlineScheduler calls `deadline_handler` once per deadline, in a
transaction with its `fired` mark, so an escalation is recorded exactly once, also across restarts and
replicas. The complaint decides whether the deadline still stands (met, moved or from an earlier round: no)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.complaints.application import ComplaintsDeps, ComplaintsUnitOfWork
from shared.contracts.complaints import (
    ComplaintCustomerResponded,
    ComplaintLinkAwaited,
    ComplaintOpened,
    ComplaintReopened,
)
from shared.domain import NotFound
from shared.eventstore.store import Metadata
from shared.eventstore.tables import events
from shared.scheduling import Deadline, DeadlineHandler

log = logging.getLogger(__name__)

# The events that set each deadline: the timer's escalation is chained to the latest of them.
_SET_BY = {
    "acknowledge": (ComplaintOpened.event_type, ComplaintReopened.event_type),
    "resolve": (ComplaintOpened.event_type, ComplaintReopened.event_type, ComplaintCustomerResponded.event_type),
    "link": (ComplaintLinkAwaited.event_type,),
}


async def _caused_by_deadline(conn: AsyncConnection, deadline: Deadline) -> Metadata:
    """The escalation continues the complaint's chain: correlated with, and caused by, the event that set
    the deadline."""
    kinds = _SET_BY.get(deadline.kind.split(".", 1)[0], ())
    row = (await conn.execute(
        select(events.c.event_id, events.c.correlation_id, events.c.traceparent)
        .where(events.c.stream_id == deadline.stream_id, events.c.type.in_(kinds))
        .order_by(events.c.version.desc()).limit(1)
    )).first()
    if row is None:
        return Metadata(correlation_id=deadline.name[:64], causation_id=deadline.name[:64])
    return Metadata(correlation_id=row.correlation_id, causation_id=row.event_id, traceparent=row.traceparent)


def deadline_handler(deps: ComplaintsDeps) -> DeadlineHandler:
    async def on_deadline(deadline: Deadline, conn: AsyncConnection) -> None:
        uow = ComplaintsUnitOfWork(conn, deps)
        try:
            complaint = await uow.load(deadline.stream_id)
        except NotFound:
            log.warning("deadline %s names a complaint that does not exist; dropped", deadline.name)
            return
        complaint.deadline_passed(deadline.kind)
        await uow.save(complaint, await _caused_by_deadline(conn, deadline))

    return on_deadline


__all__ = ["deadline_handler"]
