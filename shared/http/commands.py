"""What every command route needs besides its body: a strict body base, and the command's metadata
(correlation id from `X-Correlation-Id` or a fresh one, and the caller's `traceparent`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from shared.eventstore.store import Metadata, new_metadata


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields (a typo such as `occured_at` is a 422, not silently ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def command_metadata(request: Request) -> Metadata:
    return new_metadata(request.scope.get("state", {}).get("correlation_id"), request.headers.get("traceparent"))


CommandMetadata = Annotated[Metadata, Depends(command_metadata)]
