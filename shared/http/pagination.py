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


def decode_cursor(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except Exception as exc:
        raise Problem(400, "The cursor is not one this API handed out.", slug="invalid-cursor",
                      errors=[{"field": "cursor", "reason": "not a valid cursor"}]) from exc


Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, max 500)")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
