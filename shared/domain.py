"""The pure core every service's domain builds on: aggregates folded from their events, domain errors,
and the rules for back-dated steps. Free of web, database and Kafka imports on purpose."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Self

from shared.clock import as_utc
from shared.contracts.base import EventData
from shared.events import UNKNOWN_ACTOR


class DomainError(Exception):
    """A rule of the business refused a command. Subclasses map to HTTP statuses at the edge."""

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(DomainError):
    """The aggregate does not exist (or is not visible to the caller)."""


class InvalidTransition(DomainError):
    """The current state does not allow the command (409)."""


def transition_refused(
    status: StrEnum | None, allowed: Collection[StrEnum], refused: str, *, label: str
) -> InvalidTransition:
    """The 409 for a command the aggregate's status does not allow: the detail is `refused` (what was asked in
    which status), then `label` and the statuses that allow it, e.g. "…; allowed from: new, triaged"."""
    return InvalidTransition(f"{refused}; {label}: " + ", ".join(s.value for s in allowed), current_status=str(status))


class Conflict(DomainError):
    """The command collides with the current state or a concurrent command (409)."""


class RuleViolation(DomainError):
    """The command is well-formed but breaks a business rule, e.g. a time bound (422)."""


class Forbidden(DomainError):
    """The caller may not act on this aggregate (403)."""


@dataclass(frozen=True)
class TimeRules:
    """Bounds on a command's `occurred_at` (design.md, Time)."""

    max_backdate_days: int = 45
    max_future_skew_seconds: int = 300

    @classmethod
    def from_settings(cls, settings: Any) -> TimeRules:  # any settings with the two fields
        return cls(settings.max_backdate_days, settings.max_future_skew_seconds)

    def resolve(self, requested: datetime | None, now: datetime, previous: datetime | None) -> datetime:
        """The time of a command's step: `requested` checked against the bounds, or now when absent (never
        before the previous step, so a slightly fast clock elsewhere cannot make a step look early)."""
        if requested is None:
            return max(now, previous) if previous else now
        return self.check(requested, now, previous)

    def check(self, occurred_at: datetime, now: datetime, previous: datetime | None) -> datetime:
        occurred_at = as_utc(occurred_at)
        if occurred_at > now + timedelta(seconds=self.max_future_skew_seconds):
            raise RuleViolation(
                f"occurred_at may be at most {self.max_future_skew_seconds // 60} minutes in the future",
                field="occurred_at",
            )
        if occurred_at < now - timedelta(days=self.max_backdate_days):
            raise RuleViolation(
                f"occurred_at may be at most {self.max_backdate_days} days in the past",
                field="occurred_at",
            )
        if previous is not None and occurred_at < previous:
            raise RuleViolation(
                f"occurred_at may not be before the previous step of this case ({previous.isoformat()})",
                field="occurred_at",
            )
        return occurred_at


@dataclass
class PendingEvent:
    data: EventData
    occurred_at: datetime


class Namespaced:
    """For aggregates whose ids are chosen outside (serials, request ids, claim ids): the stream id is
    `<namespace>:<id>`, so that no id a caller picks can land in another aggregate type's stream."""

    namespace: ClassVar[str]
    id: str

    @classmethod
    def stream_id(cls, business_id: str) -> str:
        return f"{cls.namespace}:{business_id}"

    @classmethod
    def new(cls, business_id: str) -> Self:
        # A mixin of dataclass aggregates, whose first field is `id`.
        return cls(id=cls.stream_id(business_id))  # type: ignore[call-arg]

    @property
    def business_id(self) -> str:
        return self.id.removeprefix(f"{self.namespace}:")


@dataclass
class Aggregate:
    """An aggregate is the fold of its stream. Commands check rules against the folded state and record new
    events; `apply` is the only place where state changes, for old and new events alike."""

    id: str
    version: int = 0
    last_occurred_at: datetime | None = None
    pending: list[PendingEvent] = field(default_factory=list, repr=False)
    # Who caused each event, in stream order (the stored events' `actor`, `shared.events.ActorId`'s text), for
    # the views' history: the domain never decides on it. New events are the `recording_actor`'s, whom the unit
    # of work names (`recorded_by`); `system:unknown` where nobody said.
    actors: list[str] = field(default_factory=list, repr=False)
    recording_actor: str = field(default=UNKNOWN_ACTOR, repr=False)

    stream_type: ClassVar[str] = "aggregate"

    @classmethod
    def rehydrate(
        cls, stream_id: str, history: Iterable[tuple[EventData, datetime]], actors: Sequence[str] = ()
    ) -> Self:
        """The aggregate folded from its history; `actors` says who caused each of those events."""
        aggregate = cls(id=stream_id)
        for data, occurred_at in history:
            aggregate._fold(data, occurred_at)
        if aggregate.version == 0:
            raise NotFound(f"{cls.stream_type} {stream_id} does not exist")
        known = list(actors[: aggregate.version])
        aggregate.actors = known + [UNKNOWN_ACTOR] * (aggregate.version - len(known))
        return aggregate

    def recorded_by(self, actor: str) -> None:
        """Who records this aggregate's new events from now on, and its events not stored yet (an aggregate
        created before a unit of work took it in recorded them without knowing)."""
        self.recording_actor = actor
        first_pending = self.version - len(self.pending)
        self.actors[first_pending:] = [actor] * len(self.pending)

    def history_actors(self) -> list[str]:
        """Who caused each event, in stream order: one per event, whatever built the aggregate."""
        return self.actors + [UNKNOWN_ACTOR] * (self.version - len(self.actors))

    def _fold(self, data: EventData, occurred_at: datetime) -> None:
        self.apply(data, as_utc(occurred_at))
        self.version += 1
        if self.last_occurred_at is None or occurred_at > self.last_occurred_at:
            self.last_occurred_at = as_utc(occurred_at)

    def record(self, data: EventData, occurred_at: datetime) -> None:
        self._fold(data, occurred_at)
        self.pending.append(PendingEvent(data, as_utc(occurred_at)))
        self.actors.append(self.recording_actor)

    @property
    def previous_step_at(self) -> datetime | None:
        """What a new step's time may not precede (`TimeRules`): the latest event, unless the aggregate knows
        better (a complaint's timer escalations are not steps)."""
        return self.last_occurred_at

    def apply(self, data: EventData, occurred_at: datetime) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def take_pending(self) -> list[PendingEvent]:
        pending, self.pending = self.pending, []
        return pending
