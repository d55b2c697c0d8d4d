"""The page shape of warranty's list reads: the rendered rows and the key of the last one when more follow
(the routes wrap it in `shared.http.pagination.Page`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, select

from shared.domain import NotFound
from shared.eventstore.database import Database
from shared.keyset import keyset_page

Page = tuple[list[dict[str, Any]], Any]


def page_of(
    rows: Sequence[Any], limit: int, render: Callable[[Any], dict[str, Any]], cursor_of: Callable[[Any], Any]
) -> Page:
    """`rows` queried with `limit + 1`: the first `limit` rendered, and the cursor when a further row exists."""
    page = rows[:limit]
    return [render(r) for r in page], (cursor_of(page[-1]) if len(rows) > limit else None)


async def page_by_position(
    db: Database,
    table: Table,
    filters: Iterable[tuple[ColumnElement[Any], Any]],
    *,
    limit: int,
    after: int | None,
    render: Callable[[Any], dict[str, Any]],
    newest_first: bool = False,
) -> Page:
    """A page of `table`'s rows in `position` order (oldest first unless `newest_first`) after the cursor's
    position, keeping the rows where each filter's column equals its value (a filter whose value is None keeps
    all: an unscoped actor, a query parameter not given)."""
    position = table.c.position
    query = select(table)
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    async with db.read() as conn:
        rows = (
            await conn.execute(keyset_page(query, position, after=after, limit=limit, newest_first=newest_first))
        ).all()
    return page_of(rows, limit, render, lambda r: r.position)


async def visible_row(
    db: Database,
    table: Table,
    key: str,
    value: str,
    missing: str,
    visible: Callable[[Any], bool] = lambda row: True,
    *,
    field: str | None = None,
) -> Any:
    """The row of `table` whose `key` column holds `value`, if there is one and `visible(row)` holds for the
    caller; otherwise a 404 saying `missing` (naming `field`): another dealer's row reads as one that does not
    exist."""
    async with db.read() as conn:
        row = (await conn.execute(select(table).where(table.c[key] == value))).first()
    if row is None or not visible(row):
        raise NotFound(missing, field=field)
    return row
