"""Reference data as aggregates: service centers and their technicians, each in a stream of its own.

Event-sourced like jobs (rather than plain tables) so that who was skilled, active and where at any moment is
a fact internal apps and analytics can replay, and so that every change reaches Kafka through the same
outbox. Stream ids carry a prefix (`center:C1`, `technician:T1`): ids are chosen by people, and a center and
a technician may well share one. Pure: no web, database or Kafka here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from shared.contracts.base import EventData
from shared.contracts.dispatch import (
    CenterKind,
    ServiceCenterRegistered,
    ServiceCenterUpdated,
    TechnicianRegistered,
    TechnicianUpdated,
)
from shared.domain import Aggregate, RuleViolation

CENTER_PREFIX = "center:"
TECHNICIAN_PREFIX = "technician:"


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()  # a field an update leaves as it is (None may be a real value, e.g. dealer_id)


def _check_dealer_link(kind: CenterKind, dealer_id: str | None) -> None:
    if kind == CenterKind.authorized_dealer and not dealer_id:
        raise RuleViolation("an authorized_dealer center must name its dealer_id", field="dealer_id")


@dataclass
class ServiceCenter(Aggregate):
    name: str = ""
    region: str = ""
    kind: CenterKind = CenterKind.repair_center
    dealer_id: str | None = None

    stream_type: ClassVar[str] = "service_center"

    @staticmethod
    def stream_id(center_id: str) -> str:
        return CENTER_PREFIX + center_id

    @property
    def center_id(self) -> str:
        return self.id.removeprefix(CENTER_PREFIX)

    @classmethod
    def register(
        cls, center_id: str, name: str, region: str, kind: CenterKind, dealer_id: str | None, at: datetime
    ) -> ServiceCenter:
        _check_dealer_link(kind, dealer_id)
        center = cls(id=cls.stream_id(center_id))
        center.record(
            ServiceCenterRegistered(center_id=center_id, name=name, region=region, kind=kind, dealer_id=dealer_id), at
        )
        return center

    def update(
        self,
        at: datetime,
        *,
        name: str = UNCHANGED,
        region: str = UNCHANGED,
        kind: CenterKind = UNCHANGED,
        dealer_id: str | None = UNCHANGED,
    ) -> None:
        """Record the new whole record when something actually changed."""
        new = {"name": self.name, "region": self.region, "kind": self.kind, "dealer_id": self.dealer_id}
        new.update(
            {
                k: v
                for k, v in {"name": name, "region": region, "kind": kind, "dealer_id": dealer_id}.items()
                if v is not UNCHANGED
            }
        )
        _check_dealer_link(new["kind"], new["dealer_id"])
        if new != {"name": self.name, "region": self.region, "kind": self.kind, "dealer_id": self.dealer_id}:
            self.record(ServiceCenterUpdated(center_id=self.center_id, **new), at)

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        match data:
            case ServiceCenterRegistered() | ServiceCenterUpdated():
                self.name, self.region, self.kind, self.dealer_id = data.name, data.region, data.kind, data.dealer_id


def normalized_skills(skills: list[str] | tuple[str, ...]) -> list[str]:
    """Product lines, each once, in a stable order."""
    return sorted({s.strip() for s in skills if s.strip()})


@dataclass
class Technician(Aggregate):
    center_id: str = ""
    name: str = ""
    skills: tuple[str, ...] = ()
    active: bool = True

    stream_type: ClassVar[str] = "technician"

    @staticmethod
    def stream_id(technician_id: str) -> str:
        return TECHNICIAN_PREFIX + technician_id

    @property
    def technician_id(self) -> str:
        return self.id.removeprefix(TECHNICIAN_PREFIX)

    @classmethod
    def register(
        cls, technician_id: str, center_id: str, name: str, skills: list[str], active: bool, at: datetime
    ) -> Technician:
        technician = cls(id=cls.stream_id(technician_id))
        technician.record(
            TechnicianRegistered(
                technician_id=technician_id,
                center_id=center_id,
                name=name,
                skills=normalized_skills(skills),
                active=active,
            ),
            at,
        )
        return technician

    def update(
        self,
        at: datetime,
        *,
        center_id: str = UNCHANGED,
        name: str = UNCHANGED,
        skills: list[str] = UNCHANGED,
        active: bool = UNCHANGED,
    ) -> None:
        current = {"center_id": self.center_id, "name": self.name, "skills": list(self.skills), "active": self.active}
        new = dict(current)
        if skills is not UNCHANGED:
            skills = normalized_skills(skills)
        new.update(
            {
                k: v
                for k, v in {"center_id": center_id, "name": name, "skills": skills, "active": active}.items()
                if v is not UNCHANGED
            }
        )
        if new != current:
            self.record(TechnicianUpdated(technician_id=self.technician_id, **new), at)

    def can_serve(self, product_line: str) -> bool:
        return product_line in self.skills

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        match data:
            case TechnicianRegistered() | TechnicianUpdated():
                self.center_id, self.name, self.active = data.center_id, data.name, data.active
                self.skills = tuple(data.skills)
