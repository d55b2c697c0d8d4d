"""intake's reads: one request (a resource dependency that 404s outside the caller's scope) and the keyset
list of requests, both answered from the read model as the views the routes return."""

from __future__ import annotations

from sqlalchemy import select

from services.intake.domain import Status
from services.intake.read_model import service_requests
from services.intake.views import ServiceRequestView
from shared.auth import Actor
from shared.domain import NotFound
from shared.eventstore.database import Database
from shared.http.pagination import Page
from shared.keyset import keyset_page


async def request_view(db: Database, request_id: str, actor: Actor) -> ServiceRequestView:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(service_requests.c.view, service_requests.c.dealer_id).where(
                    service_requests.c.request_id == request_id
                )
            )
        ).first()
    if row is None or not actor.sees(row.dealer_id):
        raise NotFound(f"service request {request_id} does not exist")
    return ServiceRequestView.model_validate_json(row.view)


async def list_requests(
    db: Database,
    actor: Actor,
    *,
    status: Status | None,
    serial: str | None,
    dealer_id: str | None,
    limit: int,
    after: int | None,
) -> Page[ServiceRequestView]:
    """Newest first (keyset on the position the request was received at). A dealer lists only its own."""
    query = select(service_requests.c.view, service_requests.c.received_position)
    if actor.dealer_scope is not None:
        query = query.where(service_requests.c.dealer_id == actor.dealer_scope)
    if dealer_id is not None:
        query = query.where(service_requests.c.dealer_id == dealer_id)
    if status is not None:
        query = query.where(service_requests.c.status == status.value)
    if serial is not None:
        query = query.where(service_requests.c.serial == serial)
    query = keyset_page(query, service_requests.c.received_position, after=after, limit=limit, newest_first=True)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return Page[ServiceRequestView].of(
        rows, limit, item=lambda r: ServiceRequestView.model_validate_json(r.view), key=lambda r: r.received_position
    )
