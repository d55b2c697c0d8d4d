"""The envelope of an event as Servicetrail stores and ships it: CloudEvents attributes + JSON data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from shared.contracts.base import EventData

# The actor of events stored before the event store kept one (shared_0003), or of a record that names none.
UNKNOWN_ACTOR = "system:unknown"

# What an `actor` field of a view says (the history entries of every service).
ACTOR_DESCRIPTION = (
    "Who caused the event: `user:<sub>` (a command from a token; `user:<sub>;dealer=<dealer_id>` for a dealer "
    "token), `system:<service>` (a reaction or a timer), `system:unknown` (stored before actors were kept)"
)

_ESCAPED = frozenset("%;") | frozenset(chr(c) for c in (*range(0x20), 0x7F))


def _escape(part: str) -> str:
    """`%`, `;` and control characters as %XX (what `urllib.parse.unquote` reads back); everything else as it
    is, so a plain subject (`alice`, `alice@example.com`) reads the same in the actor."""
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in part)


@dataclass(frozen=True, slots=True)
class ActorId:
    """Who caused an event: the CloudEvents extension attribute `actor` (Kafka header `ce_actor`), stored with
    every event. Its text is

    - `user:<sub>` for a command from a token, `user:<sub>;dealer=<dealer_id>` for a dealer token;
    - `system:<service>` for what a service does by itself: reactions to other services' events, timers.

    `%`, `;` and control characters inside `<sub>` and `<dealer_id>` are percent-encoded, so the text splits
    unambiguously: the kind up to the first `:`, the name up to the first `;`, then `;key=value` parameters
    (today only `dealer`); `ActorId.parse` (or `urllib.parse.unquote` of each part) reads it back."""

    kind: str  # "user" | "system"
    name: str
    dealer_id: str | None = None

    @classmethod
    def user(cls, subject: str, dealer_id: str | None = None) -> ActorId:
        return cls("user", subject, dealer_id)

    @classmethod
    def system(cls, service: str) -> ActorId:
        return cls("system", service)

    def __str__(self) -> str:
        text = f"{self.kind}:{_escape(self.name)}"
        return text if self.dealer_id is None else f"{text};dealer={_escape(self.dealer_id)}"

    @classmethod
    def parse(cls, text: str) -> ActorId:
        """The actor of `text` as `__str__` writes it; text without a kind is an unknown system actor's."""
        kind, colon, rest = text.partition(":")
        if not colon or not kind:
            return cls("system", unquote(text) or "unknown")
        name, *parameters = rest.split(";")
        params = dict(p.partition("=")[::2] for p in parameters)
        dealer = params.get("dealer")
        return cls(kind, unquote(name), unquote(dealer) if dealer is not None else None)


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
    actor: str = UNKNOWN_ACTOR  # who caused it (`ActorId`'s text); events stored before actors: system:unknown

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
