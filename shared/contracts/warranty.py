"""Events of `warranty.events` that other services read. The warranty issue completes this module."""

from __future__ import annotations

from datetime import date

from shared.contracts.base import EventData, event
from shared.contracts.topics import WARRANTY


@event("warranty.checked", topic=WARRANTY, subject="request_id")
class WarrantyChecked(EventData):
    """Coverage of a received request's unit, judged on its received date, with the reason."""

    request_id: str
    serial: str
    covered: bool
    expires_on: date | None = None
    reason: str
