"""Reads of the parts ledger, from its read tables: the catalogue, stock locations, stock per (location, part),
part requests and part returns. Dealers see the part requests and returns of their own jobs only; a technician
token without a staff role those of the jobs assigned to it; anything else is a 404 or is left out of a list."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, or_, select

from services.warranty.listing import Page, page_by_position, page_of, visible_row
from services.warranty.parts_read_model import (
    part_requests,
    part_returns,
    parts,
    stock_levels,
    stock_locations,
    stock_row_view,
)
from shared.auth import Actor
from shared.domain import NotFound
from shared.eventstore.database import Database
from shared.keyset import keyset_page


def _view(row: Any) -> dict[str, Any]:
    return json.loads(row.view)


class PartsQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def part(self, part_number: str) -> dict[str, Any]:
        return _view(
            await visible_row(self.db, parts, "part_number", part_number, f"part {part_number} is not in the catalogue")
        )

    async def parts(self, *, category: str | None, limit: int, after: str | None) -> Page:
        query = select(parts)
        if category is not None:
            query = query.where(parts.c.category == category.strip().lower())
        async with self.db.read() as conn:
            rows = (await conn.execute(keyset_page(query, parts.c.part_number, after=after, limit=limit))).all()
        return page_of(rows, limit, _view, lambda r: r.part_number)

    async def locations(self, *, kind: str | None, center_id: str | None, limit: int, after: int | None) -> Page:
        query = select(stock_locations)
        for column, value in ((stock_locations.c.kind, kind), (stock_locations.c.center_id, center_id)):
            if value is not None:
                query = query.where(column == value)
        async with self.db.read() as conn:
            rows = (await conn.execute(keyset_page(query, stock_locations.c.position, after=after, limit=limit))).all()
        return page_of(rows, limit, _view, lambda r: r.position)

    async def stock(
        self, *, location_id: str | None, part_number: str | None, limit: int, after: tuple[str, str] | None
    ) -> Page:
        """Rows by location and part; a location or part named that does not exist is a 404 naming it."""
        query = select(stock_levels)
        async with self.db.read() as conn:
            if location_id is not None:
                known = select(stock_locations.c.location_id).where(stock_locations.c.location_id == location_id)
                if (await conn.execute(known)).first() is None:
                    raise NotFound(f"stock location {location_id} does not exist", field="location_id")
                query = query.where(stock_levels.c.location_id == location_id)
            if part_number is not None:
                known = select(parts.c.part_number).where(parts.c.part_number == part_number)
                if (await conn.execute(known)).first() is None:
                    raise NotFound(f"part {part_number} is not in the catalogue", field="part_number")
                query = query.where(stock_levels.c.part_number == part_number)
            if after is not None:
                location, part = after
                query = query.where(
                    or_(
                        stock_levels.c.location_id > location,
                        and_(stock_levels.c.location_id == location, stock_levels.c.part_number > part),
                    )
                )
            order = (stock_levels.c.location_id, stock_levels.c.part_number)
            rows = (await conn.execute(query.order_by(*order).limit(limit + 1))).all()
        return page_of(rows, limit, stock_row_view, lambda r: [r.location_id, r.part_number])

    async def part_request(self, part_request_id: str, actor: Actor) -> dict[str, Any]:
        missing = f"part request {part_request_id} does not exist"
        row = await visible_row(
            self.db,
            part_requests,
            "part_request_id",
            part_request_id,
            missing,
            lambda r: actor.sees(r.dealer_id, r.technician_id),
        )
        return _view(row)

    async def part_requests(
        self,
        actor: Actor,
        *,
        job_id: str | None,
        status: str | None,
        part_number: str | None,
        limit: int,
        after: int | None,
    ) -> Page:
        """Oldest first (the order backorders are filled in)."""
        technician = actor.technician_scope if actor.dealer_scope is None else None
        filters = (
            (part_requests.c.dealer_id, actor.dealer_scope),
            (part_requests.c.technician_id, technician),
            (part_requests.c.job_id, job_id),
            (part_requests.c.status, status),
            (part_requests.c.part_number, part_number),
        )
        return await page_by_position(self.db, part_requests, filters, limit=limit, after=after, render=_view)

    async def part_return(self, return_id: str, actor: Actor) -> dict[str, Any]:
        missing = f"part return {return_id} does not exist"
        row = await visible_row(
            self.db, part_returns, "return_id", return_id, missing, lambda r: actor.sees_dealer(r.dealer_id)
        )
        return _view(row)

    async def part_returns(
        self,
        actor: Actor,
        *,
        job_id: str | None,
        swap_id: str | None,
        serial: str | None,
        limit: int,
        after: int | None,
    ) -> Page:
        filters = (
            (part_returns.c.dealer_id, actor.dealer_scope),
            (part_returns.c.job_id, job_id),
            (part_returns.c.swap_id, swap_id),
            (part_returns.c.serial, serial),
        )
        return await page_by_position(self.db, part_returns, filters, limit=limit, after=after, render=_view)
