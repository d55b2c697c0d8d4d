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
    # The same minutes as timedeltas, made once (a triage asks for two deadlines).
    _accept: dict[Priority, timedelta] = field(init=False, repr=False, compare=False)
    _arrive: dict[Priority, timedelta] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, table in (("accept", self.accept_minutes), ("arrive", self.arrive_minutes)):
            missing = [p.value for p in Priority if p not in table]
            if missing or any(minutes <= 0 for minutes in table.values()):
                raise ValueError(
                    f"the {name} SLA needs a positive number of minutes for every priority; missing: {missing}"
                )
        object.__setattr__(self, "_accept", {p: timedelta(minutes=m) for p, m in self.accept_minutes.items()})
        object.__setattr__(self, "_arrive", {p: timedelta(minutes=m) for p, m in self.arrive_minutes.items()})

    def accept_due(self, priority: Priority, first_assigned_at: datetime) -> datetime:
        return first_assigned_at + self._accept[priority]

    def arrive_due(self, priority: Priority, received_at: datetime) -> datetime:
        return received_at + self._arrive[priority]


def is_late(step_at: datetime, due: datetime) -> bool:
    """A step exactly on its deadline is in time."""
    return step_at > due
