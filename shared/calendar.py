"""The working-day calendar SLA clocks run on: weekends and configured holidays do not count, and pauses
(time waiting on the customer) stop the clock. Pure: no I/O, no clock of its own.

How the clock runs, by definition:
- Days are judged on the wall clock of the calendar's time zone (default UTC). A working day is a day that is
  neither a weekend day nor a configured holiday; on a working day the clock runs all 24 hours (there are no
  office hours), on other days it stands still.
- Working time is measured on that wall clock, so a deadline keeps its clock time across a daylight-saving
  change.
- "N working days" is N x 24 hours of working time. From a moment on a working day that ends at the same clock
  time on the N-th working day after it (Tuesday 23:00 + 5 -> next Tuesday 23:00, Friday 10:00 + 5 -> next
  Friday 10:00 over a weekend). From a moment on a weekend or holiday the clock starts at 00:00 of the next
  working day, so the deadline is the end of the N-th working day (Saturday 14:00 + 5 -> Friday 24:00, i.e.
  the next Saturday 00:00).
- A pause is [start, end): the clock stands still in it. A pause without an end is still going: a deadline
  not reached before it started is unknown (None) until it ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.clock import as_utc

Pause = tuple[datetime, datetime | None]

WEEKEND = frozenset({5, 6})  # Saturday, Sunday (date.weekday())
# A calendar that never reaches a working day again is misconfigured; stop instead of looping for ever.
MAX_IDLE_DAYS = 366


def parse_holidays(text: str) -> frozenset[date]:
    """`"2026-12-25, 2026-12-26"` -> the dates; ValueError naming the first entry that is not a date."""
    holidays = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            holidays.add(date.fromisoformat(item))
        except ValueError as exc:
            raise ValueError(f"holiday {item!r} is not a date (YYYY-MM-DD)") from exc
    return frozenset(holidays)


@dataclass(frozen=True)
class WorkingCalendar:
    holidays: frozenset[date] = frozenset()
    weekend: frozenset[int] = WEEKEND
    timezone: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "weekend", frozenset(self.weekend))

    @classmethod
    def around_the_clock(cls) -> WorkingCalendar:
        """Every day counts: elapsed time, with pauses still subtracted (e.g. an 8-hour SLA)."""
        return cls(weekend=frozenset())

    @classmethod
    def from_settings(cls, holidays: str = "", timezone: str = "UTC") -> WorkingCalendar:
        return cls(holidays=parse_holidays(holidays), timezone=timezone)

    # --- questions ----------------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        return day.weekday() not in self.weekend and day not in self.holidays

    def working_time_between(self, start: datetime, end: datetime, pauses: Iterable[Pause] = ()) -> timedelta:
        """How long the clock ran from `start` to `end` (zero when end <= start)."""
        stop = self._wall(end)
        total = timedelta()
        for begin, finish in self._running(self._wall(start), self._wall_pauses(pauses), until=stop):
            if begin >= stop:
                break
            total += min(finish, stop) - begin
        return total

    def add_working_time(self, start: datetime, amount: timedelta, pauses: Iterable[Pause] = ()) -> datetime | None:
        """The moment the clock, started at `start`, has run for `amount`; None while a pause that began
        before then is still going."""
        if amount < timedelta():
            raise ValueError("amount may not be negative")
        remaining = amount
        for begin, finish in self._running(self._wall(start), self._wall_pauses(pauses)):
            if finish - begin >= remaining:
                return self._instant(begin + remaining)
            remaining -= finish - begin
        return None

    def add_working_days(self, start: datetime, days: float, pauses: Iterable[Pause] = ()) -> datetime | None:
        """`days` working days after `start` (see the module's definition), pauses subtracted."""
        return self.add_working_time(start, timedelta(days=days), pauses)

    # --- wall-clock arithmetic ----------------------------------------------------------------------------

    def _wall(self, moment: datetime) -> datetime:
        return as_utc(moment).astimezone(self._zone).replace(tzinfo=None)

    def _instant(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self._zone).astimezone(UTC)

    def _wall_pauses(self, pauses: Iterable[Pause]) -> list[tuple[datetime, datetime | None]]:
        """Pauses on the wall clock, sorted and merged; an open one swallows everything after it."""
        converted = sorted(
            ((self._wall(s), self._wall(e) if e is not None else None) for s, e in pauses), key=lambda p: p[0]
        )
        merged: list[tuple[datetime, datetime | None]] = []
        for begin, finish in converted:
            if finish is not None and finish <= begin:
                continue
            if merged and (merged[-1][1] is None or begin <= merged[-1][1]):
                last_begin, last_finish = merged[-1]
                merged[-1] = (last_begin, None if last_finish is None or finish is None else max(last_finish, finish))
            else:
                merged.append((begin, finish))
        return merged

    def _running(
        self, start: datetime, pauses: list[tuple[datetime, datetime | None]], until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """The wall-clock stretches, in order from `start`, in which the clock runs. Ends when an open pause
        begins, or once past `until`."""
        day, idle = start.date(), 0
        while until is None or datetime.combine(day, time()) < until:
            if not self.is_working_day(day):
                idle += 1
                if idle > MAX_IDLE_DAYS:
                    raise ValueError(f"no working day within {MAX_IDLE_DAYS} days of {day}: check the holidays")
                day += timedelta(days=1)
                continue
            idle = 0
            begin = max(start, datetime.combine(day, time()))
            day_end = datetime.combine(day + timedelta(days=1), time())
            for pause_begin, pause_end in pauses:
                if pause_end is not None and pause_end <= begin:
                    continue
                if pause_begin >= day_end:
                    break
                if pause_begin > begin:
                    yield begin, pause_begin
                if pause_end is None:
                    return
                begin = max(begin, pause_end)
                if begin >= day_end:
                    break
            if begin < day_end:
                yield begin, day_end
            day += timedelta(days=1)


__all__ = ["Pause", "WorkingCalendar", "parse_holidays"]
