"""intake's use cases: each command runs in one transaction that loads the request from its events, lets the
aggregate decide, and appends the new events (outbox included) and the read-model row together."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.commands import (
    Actor,
    CancelServiceRequest,
    EscalateServiceRequest,
    OpenServiceRequest,
    TriageServiceRequest,
)
from services.intake.domain import ServiceRequest, Status
from services.intake.read_model import (
    open_request_for,
    reserve_serial,
    save_view,
    service_requests,
    to_view,
)
from shared.clock import Clock
from shared.contracts.intake import ServiceRequestReceived
from shared.domain import Conflict, NotFound, TimeRules
from shared.events import EventEnvelope
from shared.eventstore.database import Database
from shared.eventstore.repository import Repository
from shared.eventstore.store import EventStore, Metadata


@dataclass
class IntakeDeps:
    db: Database
    store: EventStore
    clock: Clock
    time_rules: TimeRules


class IntakeUnitOfWork:
    """Requests in, requests out, inside one transaction."""

    def __init__(self, conn: AsyncConnection, deps: IntakeDeps) -> None:
        self.conn = conn
        self.deps = deps

        self.requests = Repository(conn, deps.store, ServiceRequest)

    async def load(self, request_id: str) -> ServiceRequest:
        return await self.requests.load(request_id)

    async def save(self, request: ServiceRequest, metadata: Metadata) -> list[EventEnvelope]:
        """Append the request's new events and bring its read-model row up to date, in one transaction."""
        stored = await self.requests.save(request, metadata)
        if not stored:
            return []
        first_position = stored[0].position if stored[0].sequence == 1 else None
        await save_view(self.conn, request, first_position, self.deps.db.is_sqlite)
        return stored


def _visible(request: ServiceRequest, actor: Actor) -> ServiceRequest:
    if actor.dealer_scope is not None and request.dealer_id != actor.dealer_scope:
        raise NotFound(f"service request {request.id} does not exist")
    return request


def _when(deps: IntakeDeps, requested: datetime | None, previous: datetime | None) -> datetime:
    return deps.time_rules.resolve(requested, deps.clock.now(), previous)


# --- command handlers -------------------------------------------------------------------------------------

async def open_request(cmd: OpenServiceRequest, actor: Actor, uow: IntakeUnitOfWork, meta: Metadata) -> ServiceRequest:
    at = _when(uow.deps, cmd.occurred_at, None)
    existing = await open_request_for(uow.conn, cmd.product.serial)
    if existing is not None:
        raise Conflict(
            f"serial {cmd.product.serial} already has an open service request",
            existing_id=existing if actor.dealer_scope is None or await _owned(uow, existing, actor) else None,
        )
    request_id = str(uuid.uuid4())
    received = ServiceRequestReceived(
        request_id=request_id, dealer_id=cmd.dealer_id, channel=cmd.channel, customer=cmd.customer,
        product=cmd.product, purchase_date=cmd.purchase_date, symptom=cmd.symptom,
        customer_tier=cmd.customer_tier, urgent=cmd.urgent,
    )
    request = ServiceRequest.receive(request_id, received, at)
    await reserve_serial(uow.conn, cmd.product.serial, request_id)
    await uow.save(request, meta)
    return request


async def _owned(uow: IntakeUnitOfWork, request_id: str, actor: Actor) -> bool:
    dealer = (
        await uow.conn.execute(select(service_requests.c.dealer_id).where(service_requests.c.request_id == request_id))
    ).scalar_one_or_none()
    return dealer == actor.dealer_scope


async def triage(cmd: TriageServiceRequest, actor: Actor, uow: IntakeUnitOfWork, meta: Metadata) -> ServiceRequest:
    request = _visible(await uow.load(cmd.request_id), actor)
    request.triage(cmd.mode, cmd.priority, cmd.note, _when(uow.deps, cmd.occurred_at, request.last_occurred_at))
    await uow.save(request, meta)
    return request


async def escalate(cmd: EscalateServiceRequest, actor: Actor, uow: IntakeUnitOfWork, meta: Metadata) -> ServiceRequest:
    request = _visible(await uow.load(cmd.request_id), actor)
    request.escalate(cmd.reason, _when(uow.deps, cmd.occurred_at, request.last_occurred_at))
    await uow.save(request, meta)
    return request


async def cancel(cmd: CancelServiceRequest, actor: Actor, uow: IntakeUnitOfWork, meta: Metadata) -> ServiceRequest:
    request = _visible(await uow.load(cmd.request_id), actor)
    request.cancel(cmd.reason, _when(uow.deps, cmd.occurred_at, request.last_occurred_at))
    await uow.save(request, meta)
    return request


CommandHandler = Callable[[Any, Actor, IntakeUnitOfWork, Metadata], Awaitable[ServiceRequest]]

COMMAND_HANDLERS: dict[type, CommandHandler] = {
    OpenServiceRequest: open_request,
    TriageServiceRequest: triage,
    EscalateServiceRequest: escalate,
    CancelServiceRequest: cancel,
}


class IntakeApplication:
    """The one entry point of intake's use cases, for routes, consumers and tests alike."""

    def __init__(self, deps: IntakeDeps) -> None:
        self.deps = deps

    async def handle(self, command: Any, actor: Actor, meta: Metadata) -> dict[str, Any]:
        handler = COMMAND_HANDLERS[type(command)]
        try:
            async with self.deps.db.transaction() as conn:
                request = await handler(command, actor, IntakeUnitOfWork(conn, self.deps), meta)
        except IntegrityError as exc:
            # Two opens for one serial raced past the check; the reservation's key stopped the second.
            if isinstance(command, OpenServiceRequest):
                async with self.deps.db.read() as conn:
                    existing = await open_request_for(conn, command.product.serial)
                    owner = (await conn.execute(select(service_requests.c.dealer_id).where(
                        service_requests.c.request_id == existing))).scalar_one_or_none()
                # As without the race: a dealer learns the id of its own open request only.
                shown = existing if actor.dealer_scope is None or owner == actor.dealer_scope else None
                raise Conflict(f"serial {command.product.serial} already has an open service request",
                               existing_id=shown) from exc
            raise
        return to_view(request)

    async def get(self, request_id: str, actor: Actor) -> dict[str, Any]:
        async with self.deps.db.read() as conn:
            row = (
                await conn.execute(
                    select(service_requests.c.view, service_requests.c.dealer_id)
                    .where(service_requests.c.request_id == request_id)
                )
            ).first()
        if row is None or (actor.dealer_scope is not None and row.dealer_id != actor.dealer_scope):
            raise NotFound(f"service request {request_id} does not exist")
        return json.loads(row.view)

    async def list(
        self, actor: Actor, *, status: Status | None, serial: str | None, dealer_id: str | None,
        limit: int, after: int | None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; returns the page and the position to continue after (None at the end)."""
        query = select(service_requests.c.view, service_requests.c.received_position)
        if actor.dealer_scope is not None:
            query = query.where(service_requests.c.dealer_id == actor.dealer_scope)
        if dealer_id is not None:
            query = query.where(service_requests.c.dealer_id == dealer_id)
        if status is not None:
            query = query.where(service_requests.c.status == status.value)
        if serial is not None:
            query = query.where(service_requests.c.serial == serial)
        if after is not None:
            query = query.where(service_requests.c.received_position < after)
        query = query.order_by(service_requests.c.received_position.desc()).limit(limit + 1)
        async with self.deps.db.read() as conn:
            rows = (await conn.execute(query)).all()
        page = rows[:limit]
        next_after = page[-1].received_position if len(rows) > limit else None
        return [json.loads(r.view) for r in page], next_after
