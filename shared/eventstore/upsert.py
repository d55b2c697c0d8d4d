"""One dialect-neutral upsert: the connection knows its dialect, so no call site passes `is_sqlite`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection,
    table: Table,
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    key: str | Iterable[str] | None = None,
    update: Iterable[str] | None = None,
) -> None:
    """Insert `values` (a row or a list of rows); on a conflict with the key (`key`'s columns, or any unique
    constraint when None) update the `update` columns of the existing row, or leave it as it is when `update`
    is empty or None (insert-if-absent). SQLite and PostgreSQL take the same `ON CONFLICT` form."""
    if not values:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    index = [key] if isinstance(key, str) else (list(key) if key is not None else None)
    changes = {name: statement.excluded[name] for name in (update or ())}
    if changes:
        statement = statement.on_conflict_do_update(index_elements=index, set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=index)
    rows = [dict(values)] if isinstance(values, Mapping) else [dict(v) for v in values]
    await conn.execute(statement, rows)
