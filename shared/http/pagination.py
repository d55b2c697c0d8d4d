"""Keyset pagination, the one way every list pages: `?limit=` (default 50, max 500) and an opaque `?cursor=`
naming the key of the last row handed out; a list answers a `Page[ItemView]`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.http.problems import Problem

T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    """One page of a list: its items, and the cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None

    @classmethod
    def of(cls, rows: Sequence[R], limit: int, *, item: Callable[[R], T], key: Callable[[R], Any]) -> Page[T]:
        """The page of `rows` (queried with `limit + 1` so that a further row says there is a next page)."""
        shown = rows[:limit]
        more = len(rows) > limit and bool(shown)
        return cls(items=[item(row) for row in shown], next_cursor=encode_cursor(key(shown[-1])) if more else None)


def encode_cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": position}).encode()).decode().rstrip("=")


_BIGGEST = 2**63 - 1  # positions and sequences are 64-bit columns; a bigger number is no cursor of ours
_MAX_TEXT = 200
_MAX_PARTS = 4


def _bounded(value: Any) -> bool:
    """What our cursors hold: 64-bit integers, short strings, or a short list of those."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_BIGGEST - 1 <= value <= _BIGGEST
    if isinstance(value, str):
        return len(value) <= _MAX_TEXT
    if isinstance(value, list):
        return len(value) <= _MAX_PARTS and all(isinstance(v, (int, str)) and _bounded(v) for v in value)
    return False


def decode_cursor(cursor: str | None) -> Any:
    """The position a cursor names, or a 400: whatever a client forges (huge numbers, deep structures, other
    types) is refused here, before it reaches a query."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
        if not _bounded(after):
            raise ValueError("out of bounds")
        return after
    except Exception as exc:
        raise Problem(
            400,
            "The cursor is not one this API handed out.",
            slug="invalid-cursor",
            errors=[{"field": "cursor", "reason": "not a valid cursor"}],
        ) from exc


Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, max 500)")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")]


def keyset_after(cursor: str | None, kind: type | tuple[type, ...]) -> Any:
    """The key a list's cursor names, checked to be of `kind` (a position, a sort key): a cursor of another
    list is a 400 naming the field, not a query error."""
    after = decode_cursor(cursor)
    if after is not None and (not isinstance(after, kind) or isinstance(after, bool)):
        raise Problem(
            400,
            "The cursor is not one this API handed out.",
            slug="invalid-cursor",
            errors=[{"field": "cursor", "reason": "not a cursor of this list"}],
        )
    return after
