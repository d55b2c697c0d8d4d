"""A complaint's deadlines (design.md, complaints): acknowledge within 1 hour; resolve within 8 hours
(general) or 5 working days (serious); time waiting on the customer stops the resolution clock. Pure.

Choices the contract leaves open:
- the acknowledgement clock and the 8-hour clock are elapsed time, round the clock (a complaint does not
  wait for Monday); only the serious clock counts working days (shared.calendar defines them: the same
  clock time on the 5th working day, or the end of the 5th working day when opened on a day off);
- waiting on the customer stops the resolution clocks only: acknowledging is our first answer, and a
  complaint cannot wait on the customer before someone has taken it on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.calendar import Pause, WorkingCalendar
from shared.contracts.complaints import ComplaintSeverity

ROUND_THE_CLOCK = WorkingCalendar.around_the_clock()


@dataclass(frozen=True)
class ComplaintSla:
    acknowledge_within: timedelta = timedelta(hours=1)
    resolve_general_within: timedelta = timedelta(hours=8)
    resolve_serious_working_days: float = 5
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)

    def acknowledge_due(self, opened_at: datetime) -> datetime:
        return opened_at + self.acknowledge_within

    def resolve_due(
        self, severity: ComplaintSeverity, started_at: datetime, pauses: Sequence[Pause] = ()
    ) -> datetime | None:
        """When the resolution clock started at `started_at` runs out; None while a pause that began before
        then is still going."""
        if severity == ComplaintSeverity.serious:
            return self.calendar.add_working_days(started_at, self.resolve_serious_working_days, pauses)
        return ROUND_THE_CLOCK.add_working_time(started_at, self.resolve_general_within, pauses)
