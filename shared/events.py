"""The envelope of an event as Servicetrail stores and ships it: CloudEvents attributes + JSON data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from shared.contracts.base import EventData


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    """One event with its CloudEvents context attributes and extensions. `data` is the JSON text."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    dataschema: str
    sequence: int
    recordedat: datetime
    correlationid: str
    causationid: str
    data: str
    topic: str
    traceparent: str | None = None
    position: int | None = None  # global position in the producing service's event store

    @property
    def schema_version(self) -> int:
        try:
            return int(self.dataschema.rsplit("/", 1)[1])
        except (IndexError, ValueError):
            return 0

    def data_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.data)
        return data


E = TypeVar("E", bound=EventData, covariant=True)


@dataclass(frozen=True, slots=True)
class IncomingEvent(Generic[E]):
    """An envelope whose data was validated against its contract. A reaction declares the contract class it
    takes (`IncomingEvent[WarrantyChecked]`), so `event.data` is typed and the handler table is checked
    against it at start-up (`shared.kernel.handlers`)."""

    envelope: EventEnvelope
    data: E

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def time(self) -> datetime:
        return self.envelope.time
