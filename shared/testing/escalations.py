"""Escalations appended straight to an event store: the stand-in events of the tests of the store, the relay and
the lean write path (any contract event would do; an escalation needs only its stream and a reason)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import utcnow
from shared.contracts.intake import ServiceRequestEscalated
from shared.events import ActorId, EventEnvelope
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import Metadata, new_metadata

TESTER = ActorId.user("tester")


def escalation(stream: str, reason: str = "r", at: datetime | None = None) -> NewEvent:
    """The request `stream` escalated for `reason`, at `at` (now unless given)."""
    return NewEvent(ServiceRequestEscalated(request_id=stream, reason=reason), at or utcnow())


async def append_escalations(
    conn: AsyncConnection,
    store: EventStore,
    stream: str,
    reasons: Sequence[str],
    *,
    expected_version: int = 0,
    actor: ActorId = TESTER,
    at: datetime | None = None,
    metadata: Metadata | None = None,
) -> list[EventEnvelope]:
    """One escalation of `stream` per reason, appended in `conn` after `expected_version` (a new stream unless
    given) by `actor`, as a command from outside (`new_metadata`) unless `metadata` says otherwise."""
    return await store.append(
        conn,
        stream_id=stream,
        stream_type="t",
        expected_version=expected_version,
        new_events=[escalation(stream, reason, at) for reason in reasons],
        metadata=metadata or new_metadata(),
        actor=actor,
    )
