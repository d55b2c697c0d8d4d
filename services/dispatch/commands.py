"""What callers ask dispatch to do (imperative names). Entry points build these; application handles them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.dispatch.workforce import UNCHANGED
from shared.contracts.dispatch import CenterKind, RevisitChannel, VisitFailureReason


@dataclass(frozen=True)
class RegisterServiceCenter:
    center_id: str
    name: str
    region: str
    kind: CenterKind
    dealer_id: str | None = None


@dataclass(frozen=True)
class UpdateServiceCenter:
    center_id: str
    name: Any = UNCHANGED
    region: Any = UNCHANGED
    kind: Any = UNCHANGED
    dealer_id: Any = UNCHANGED


@dataclass(frozen=True)
class RegisterTechnician:
    technician_id: str
    center_id: str
    name: str
    skills: list[str] = field(default_factory=list)
    active: bool = True


@dataclass(frozen=True)
class UpdateTechnician:
    technician_id: str
    center_id: Any = UNCHANGED
    name: Any = UNCHANGED
    skills: Any = UNCHANGED
    active: Any = UNCHANGED


@dataclass(frozen=True)
class AssignJob:
    job_id: str
    technician_id: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class AcceptJob:
    job_id: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RecordArrival:
    job_id: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class CompleteJob:
    job_id: str
    fixed: bool
    resolution: str | None = None
    occurred_at: datetime | None = None
    reason: VisitFailureReason | None = None


@dataclass(frozen=True)
class RecordRevisit:
    job_id: str
    satisfaction: int
    channel: RevisitChannel
    nps: int | None = None
    comment: str | None = None
    occurred_at: datetime | None = None
