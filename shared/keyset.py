"""Keyset pagination in SQL, written once for every service's list reads: the rows after the cursor's key in
the list's order, one more than the page holds (so that `shared.http.pagination.Page.of` can tell whether
another page follows). No offsets: a page costs the same however deep, and rows appended meanwhile neither
repeat nor vanish between pages."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select

S = TypeVar("S", bound=Select[Any])


def keyset_page(query: S, key: ColumnElement[Any], *, after: Any, limit: int, newest_first: bool = False) -> S:
    """`query` narrowed to one page ordered by `key` (ascending, or descending when `newest_first`): the rows
    past `after` (the previous page's last key; None for the first page), at most `limit + 1` of them."""
    if after is not None:
        query = query.where(key < after if newest_first else key > after)
    return query.order_by(key.desc() if newest_first else key).limit(limit + 1)
