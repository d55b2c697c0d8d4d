"""SLA policies per priority (design.md, dispatch): how long a job may wait to be accepted and to be started.
Pure: the deadlines are computed here, the timers that watch them live in the application."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.contracts.enums import Priority

DEFAULT_ACCEPT_MINUTES: dict[Priority, float] = {Priority.P1: 30, Priority.P2: 120, Priority.P3: 240}
DEFAULT_ARRIVE_MINUTES: dict[Priority, float] = {Priority.P1: 240, Priority.P2: 1440, Priority.P3: 4320}


@dataclass(frozen=True)
class SlaPolicy:
    """Accept within N minutes of the job's first assignment; arrive within M minutes of the request's receipt."""

    accept_minutes: Mapping[Priority, float] = field(default_factory=lambda: dict(DEFAULT_ACCEPT_MINUTES))
    arrive_minutes: Mapping[Priority, float] = field(default_factory=lambda: dict(DEFAULT_ARRIVE_MINUTES))

    def __post_init__(self) -> None:
        for name, table in (("accept", self.accept_minutes), ("arrive", self.arrive_minutes)):
            missing = [p.value for p in Priority if p not in table]
            if missing or any(minutes <= 0 for minutes in table.values()):
                raise ValueError(
                    f"the {name} SLA needs a positive number of minutes for every priority; missing: {missing}"
                )

    def accept_due(self, priority: Priority, first_assigned_at: datetime) -> datetime:
        return first_assigned_at + timedelta(minutes=self.accept_minutes[priority])

    def arrive_due(self, priority: Priority, received_at: datetime) -> datetime:
        return received_at + timedelta(minutes=self.arrive_minutes[priority])


def is_late(step_at: datetime, due: datetime) -> bool:
    """A step exactly on its deadline is in time."""
    return step_at > due
