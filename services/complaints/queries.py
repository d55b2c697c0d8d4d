"""complaints' reads: one complaint (404 outside the caller's scope) and the keyset list, answered from the
read model as the views the routes return."""

from __future__ import annotations

from dataclasses import replace

from services.complaints.read_model import ComplaintFilter, page_of_complaints, visible_view
from services.complaints.views import ComplaintView
from shared.auth import Actor
from shared.domain import NotFound
from shared.eventstore.database import Database
from shared.http.pagination import Page


async def complaint_view(db: Database, complaint_id: str, actor: Actor) -> ComplaintView:
    async with db.read() as conn:
        row = await visible_view(conn, complaint_id)
    if row is None or not actor.sees_dealer(row.dealer_id):
        raise NotFound(f"complaint {complaint_id} does not exist")
    return ComplaintView.model_validate_json(row.view)


async def list_complaints(
    db: Database, actor: Actor, where: ComplaintFilter, *, by_urgency: bool, after: int | str | None, limit: int
) -> Page[ComplaintView]:
    """A dealer lists only complaints about its own requests, whatever it asks for."""
    if actor.dealer_scope is not None:
        where = replace(where, dealer_id=actor.dealer_scope)
    async with db.read() as conn:
        return await page_of_complaints(conn, where, by_urgency=by_urgency, after=after, limit=limit)
