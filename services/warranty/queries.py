"""warranty's read side for the API: coverage of a serial on a day, products, policies, swaps, claims and a
unit's history. Dealers see only their own sales, swaps on their jobs, their claims, and their part of a unit's
history: anything else is a 404, never another dealer's data."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from services.warranty import timeline
from services.warranty.application import WarrantyRules, find, policy_book
from services.warranty.coverage import judge, unit_coverage
from services.warranty.domain import Unit
from services.warranty.listing import Page, page_by_position, page_of, visible_row
from services.warranty.projections import PROJECTIONS
from services.warranty.read_model import claims, policies, product_view, products, swaps
from shared.auth import Actor
from shared.clock import Clock
from shared.domain import NotFound, TimeRules
from shared.events import ActorId
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore, new_metadata
from shared.kernel import UnitOfWork
from shared.keyset import keyset_page

# Reads fold aggregates in units of work that are never committed: nobody records anything through them.
actor_of_reads = ActorId.system("warranty")


class WarrantyQueries:
    def __init__(self, db: Database, store: EventStore, clock: Clock, rules: WarrantyRules) -> None:
        self.db, self.store, self.clock, self.rules = db, store, clock, rules

    async def coverage(self, serial: str, on: date | None, category: str | None) -> dict[str, Any]:
        """Coverage of a registered unit on a day (today by default), its parts' ends, and the reason."""
        on = on or self.clock.now().date()
        async with self.db.read() as conn:
            # Aggregates folded on a read connection: a unit of work that is never committed.
            uow = UnitOfWork(
                conn,
                store=self.store,
                projections=PROJECTIONS,
                clock=self.clock,
                time_rules=TimeRules(),
                metadata=new_metadata(),
                actor=actor_of_reads,
            )
            unit = await find(uow, Unit, serial)
            sale = unit.sale() if unit is not None else None
            if sale is None:
                raise NotFound(f"serial {serial} is not registered", field="serial")
            policy = (await policy_book(uow, unit.product_line, self.rules)).for_sale(sale.sold_on)
        view = unit_coverage(sale, policy, on)
        body = {
            "serial": serial,
            "on": on.isoformat(),
            "covered": view.verdict.covered,
            "expires_on": view.verdict.expires_on.isoformat() if view.verdict.expires_on else None,
            "parts": {c: (d.isoformat() if d else None) for c, d in view.parts.items()},
            "excluded_categories": sorted(policy.excluded_categories),
            "reason": view.verdict.reason,
            "basis": view.verdict.basis.value,
            "sold_on": sale.sold_on.isoformat(),
            "product_line": unit.product_line,
            "policy": {
                "months": policy.months,
                "part_months": dict(policy.part_months),
                "effective_from": policy.effective_from.isoformat() if policy.effective_from else None,
                "default": policy.is_default,
            },
        }
        if category is not None:  # the category's own verdict, by the same rules as a swap
            part = judge(sale, policy, on, category, serial)
            body["part"] = {
                "category": part.category,
                "covered": part.covered,
                "until": part.expires_on.isoformat() if part.expires_on else None,
                "reason": part.reason,
            }
        return body

    async def product(self, serial: str, actor: Actor) -> dict[str, Any]:
        row = await visible_row(
            self.db,
            products,
            "serial",
            serial,
            f"serial {serial} is not registered",
            lambda r: actor.sees_dealer(r.dealer_id),
            field="serial",
        )
        return product_view(row)

    async def products(
        self, actor: Actor, *, dealer_id: str | None, product_line: str | None, limit: int, after: int | None
    ) -> Page:
        filters = (
            (products.c.dealer_id, actor.dealer_scope),
            (products.c.dealer_id, dealer_id),
            (products.c.product_line, product_line),
        )
        return await page_by_position(self.db, products, filters, limit=limit, after=after, render=product_view)

    async def policy(self, product_line: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            view = (await conn.execute(select(policies.c.view).where(policies.c.product_line == product_line))).scalar()
        if view is None:
            raise NotFound(
                f"product line {product_line} has no warranty policy "
                f"(the default of {self.rules.default_months} months applies)"
            )
        return json.loads(view)

    async def policies(self, limit: int, after: str | None) -> Page:
        query = keyset_page(select(policies), policies.c.product_line, after=after, limit=limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return page_of(rows, limit, lambda r: json.loads(r.view), lambda r: r.product_line)

    async def swap(self, swap_id: str, actor: Actor) -> dict[str, Any]:
        missing = f"part swap {swap_id} does not exist"
        row = await visible_row(self.db, swaps, "swap_id", swap_id, missing, lambda r: actor.sees_dealer(r.dealer_id))
        return json.loads(row.view)

    async def swaps(
        self, actor: Actor, *, job_id: str | None, serial: str | None, limit: int, after: int | None
    ) -> Page:
        filters = (
            (swaps.c.dealer_id, actor.dealer_scope),
            (swaps.c.job_id, job_id),
            (swaps.c.serial, serial),
        )
        return await page_by_position(
            self.db, swaps, filters, limit=limit, after=after, render=lambda r: json.loads(r.view)
        )

    async def claim(self, claim_id: str, actor: Actor) -> dict[str, Any]:
        missing = f"claim {claim_id} does not exist"
        row = await visible_row(
            self.db, claims, "claim_id", claim_id, missing, lambda r: actor.sees_dealer(r.dealer_id)
        )
        return json.loads(row.view)

    async def claims(
        self,
        actor: Actor,
        *,
        status: str | None,
        job_id: str | None,
        dealer_id: str | None,
        limit: int,
        after: int | None,
    ) -> Page:
        """Newest first."""
        filters = (
            (claims.c.dealer_id, actor.dealer_scope),
            (claims.c.dealer_id, dealer_id),
            (claims.c.status, status),
            (claims.c.job_id, job_id),
        )
        return await page_by_position(
            self.db, claims, filters, limit=limit, after=after, render=lambda r: json.loads(r.view), newest_first=True
        )

    async def history(self, serial: str, actor: Actor, *, limit: int, after: tuple[datetime, int] | None) -> Page:
        async with self.db.read() as conn:
            items, cursor = await timeline.history(
                conn, serial, dealer_scope=actor.dealer_scope, after=after, limit=limit
            )
        if not items and after is None:
            raise NotFound(
                f"serial {serial} has no history" + (" of yours" if actor.dealer_scope else ""), field="serial"
            )
        return items, cursor
