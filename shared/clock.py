"""Time helpers: every timestamp in Servicetrail is an aware UTC datetime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (SQLite returns them so); aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with a 'Z' and microseconds only when there are some. (isoformat is C code and omits
    zero microseconds by itself; the relay formats two of these per event.)"""
    if value.tzinfo is not UTC:
        value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


@runtime_checkable
class AdvancingClock(Clock, Protocol):
    """A clock that time jumps on (a test's): a loop that sleeps until a time on it asks to be woken when it
    moves, instead of finding out at its next poll."""

    def wake_on_advance(self, wake: Callable[[], None]) -> None: ...


class FixedClock:
    """A clock for tests: it moves only when told, and then wakes the loops that wait on it (a deadline
    scheduler, a delivery worker), which look at once instead of at their next poll."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._wakes: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    def wake_on_advance(self, wake: Callable[[], None]) -> None:
        self._wakes.append(wake)

    def advance(self, **delta: float) -> None:
        self.advance_to(self._now + timedelta(**delta))

    def advance_to(self, moment: datetime) -> None:
        """Move to `moment` (never back: a clock that runs backwards is no clock a service meets)."""
        moment = as_utc(moment)
        if moment < self._now:
            raise ValueError(f"{moment.isoformat()} is before the clock's {self._now.isoformat()}")
        self._now = moment
        for wake in self._wakes:
            wake()
