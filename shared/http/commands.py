"""What every command route needs besides its body: a strict body base, and the command's metadata
(correlation id from `X-Correlation-Id` or a fresh one, and the caller's `traceparent`)."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from shared.eventstore.store import Metadata, new_metadata
from shared.observability.tracing import current_traceparent


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields (a typo such as `occured_at` is a 422, not silently ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def command_metadata(request: Request) -> Metadata:
    """The caller's W3C `traceparent` is kept; without one, the command starts a trace of its own, so that
    every event of the chain carries a trace id that consumers and logs can follow."""
    traceparent = current_traceparent(request.headers.get("traceparent"))
    if not _TRACEPARENT.fullmatch(traceparent or "") or traceparent.split("-")[1] == "0" * 32:
        traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    return new_metadata(request.scope.get("state", {}).get("correlation_id"), traceparent)


_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


CommandMetadata = Annotated[Metadata, Depends(command_metadata)]
