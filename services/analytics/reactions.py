"""How analytics follows the four topics: event type → handler, the one table the consumer runs.

Each handler stores the event (once, by id) in the active generation — and in the generation a rebuild is
filling, if any — and folds the request it belongs to again from all of its stored events, so that the facts
do not depend on the order in which events of different topics arrive."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from services.analytics.facts import fold_request
from services.analytics.records import CONSUMES, COMPLAINT_OPENED, HANDLED_TYPES, AnalyticsEvent, analytics_event
from services.analytics.store import (
    events_of_request,
    insert_events,
    read_state,
    request_of_job,
    save_request,
    serialize_on,
)
from services.analytics.tables import Generation, generation
from shared.events import IncomingEvent
from shared.messaging.consumer import Handler


@dataclass
class ProjectionDeps:
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the alert monitor


async def refold(conn: AsyncConnection, tables: Generation, request_id: str) -> None:
    fact, revisits = fold_request(request_id, await events_of_request(conn, tables, request_id))
    await save_request(conn, tables, fact, revisits)


async def owner_of(conn: AsyncConnection, tables: Generation, event: AnalyticsEvent) -> str | None:
    if event.request_id is not None:
        return event.request_id
    if event.type == COMPLAINT_OPENED and event.job_id is not None:
        return await request_of_job(conn, tables, event.job_id)
    return None


async def apply_event(conn: AsyncConnection, event: AnalyticsEvent) -> bool:
    """Store and fold one event; False when it was already stored.

    Locks (PostgreSQL, several replicas): the job first, then the request, always in that order. A complaint
    naming only a job and the job's first event then never miss each other, whichever commits first."""
    state = await read_state(conn, lock="share")
    active = generation(state.active)
    if state.building is not None:
        await insert_events(conn, generation(state.building), [event])
    if not await insert_events(conn, active, [event]):
        return False
    if event.job_id is not None:
        await serialize_on(conn, f"job:{event.job_id}")
    request_id = await owner_of(conn, active, event)
    if request_id is not None:
        await serialize_on(conn, f"request:{request_id}")
        await refold(conn, active, request_id)
    return True


async def project(deps: ProjectionDeps, incoming: IncomingEvent, conn: AsyncConnection) -> None:
    if await apply_event(conn, analytics_event(incoming.envelope, incoming.data)):
        deps.changed.set()


def handler_table(deps: ProjectionDeps) -> dict[str, Handler]:
    return {event_type: partial(project, deps) for event_type in sorted(HANDLED_TYPES)}


__all__ = ["CONSUMES", "ProjectionDeps", "apply_event", "handler_table", "refold"]
