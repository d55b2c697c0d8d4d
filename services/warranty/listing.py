"""The page shape of warranty's list reads: the rendered rows and the key of the last one when more follow
(the routes wrap it in `shared.http.pagination.Page`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Page = tuple[list[dict[str, Any]], Any]


def page_of(
    rows: Sequence[Any], limit: int, render: Callable[[Any], dict[str, Any]], cursor_of: Callable[[Any], Any]
) -> Page:
    """`rows` queried with `limit + 1`: the first `limit` rendered, and the cursor when a further row exists."""
    page = rows[:limit]
    return [render(r) for r in page], (cursor_of(page[-1]) if len(rows) > limit else None)
