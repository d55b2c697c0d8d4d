"""What a due deadline does: the runtime's DeadlineScheduler calls the kernel's deadline handler once per
deadline, in a transaction with its `fired` mark, and that runs `on_deadline` in a unit of work, so an
escalation is recorded exactly once, also across restarts and replicas. The complaint decides whether the deadline still stands (met, moved or from an earlier round: no)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.complaints.domain import Complaint
from shared.contracts.complaints import (
    ComplaintCustomerResponded,
    ComplaintLinkAwaited,
    ComplaintOpened,
    ComplaintReopened,
)
from shared.eventstore.store import Metadata
from shared.eventstore.tables import events
from shared.kernel import UnitOfWork
from shared.scheduling import Deadline

log = logging.getLogger(__name__)

# The events that set each deadline: the timer's escalation is chained to the latest of them.
_SET_BY = {
    "acknowledge": (ComplaintOpened.event_type, ComplaintReopened.event_type),
    "resolve": (ComplaintOpened.event_type, ComplaintReopened.event_type, ComplaintCustomerResponded.event_type),
    "link": (ComplaintLinkAwaited.event_type,),
}


async def caused_by_deadline(conn: AsyncConnection, deadline: Deadline) -> Metadata:
    """The escalation continues the complaint's chain: correlated with, and caused by, the event that set
    the deadline."""
    kinds = _SET_BY.get(deadline.kind.split(".", 1)[0], ())
    row = (
        await conn.execute(
            select(events.c.event_id, events.c.correlation_id, events.c.traceparent)
            .where(events.c.stream_id == deadline.stream_id, events.c.type.in_(kinds))
            .order_by(events.c.version.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return Metadata(correlation_id=deadline.name[:64], causation_id=deadline.name[:64])
    return Metadata(correlation_id=row.correlation_id, causation_id=row.event_id, traceparent=row.traceparent)


async def on_deadline(deadline: Deadline, uow: UnitOfWork) -> None:
    complaint = await uow.find(Complaint, deadline.stream_id)
    if complaint is None:
        log.warning("deadline %s names a complaint that does not exist; dropped", deadline.name)
        return
    complaint.deadline_passed(deadline.kind)


__all__ = ["caused_by_deadline", "on_deadline"]
