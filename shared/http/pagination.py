"""Cursor pagination: `?limit=` (default 50, max 500) and an opaque `?cursor=`."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.http.problems import Problem

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


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
        raise Problem(400, "The cursor is not one this API handed out.", slug="invalid-cursor",
                      errors=[{"field": "cursor", "reason": "not a valid cursor"}]) from exc


Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, max 500)")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")]
