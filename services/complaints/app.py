"""complaints' composition root: everything is wired in the lifespan, so tests can build the app with their
own settings (database file, broker, clock, short deadlines) and nothing happens at import time."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from pydantic import Field, field_validator

from services.complaints import api
from services.complaints.application import COMMANDS, ComplaintPolicy
from services.complaints.reactions import CONSUMES, REACTIONS
from services.complaints.read_model import PROJECTIONS, metadata
from services.complaints.sla import ComplaintSla
from services.complaints.timers import caused_by_deadline, on_deadline
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.http.app import create_service_app
from shared.kernel import Application, Kernel
from shared.kernel.service import kernel_lifespan
from shared.settings import ServiceSettings

SERVICE = "complaints"


class ComplaintsSettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8004
    complaint_acknowledge_within_seconds: float = Field(3600, gt=0, description="Acknowledge deadline")
    complaint_resolve_general_within_seconds: float = Field(
        8 * 3600, gt=0, description="Resolve deadline of general complaints"
    )
    complaint_resolve_serious_working_days: float = Field(5, gt=0, description="Resolve deadline of serious complaints")
    complaint_holidays: str = Field(
        "", description="Days the working-day clock skips besides weekends: YYYY-MM-DD, comma separated"
    )
    complaint_timezone: str = Field("UTC", description="Time zone in which working days and holidays are judged")
    complaint_low_satisfaction: int = Field(
        2, ge=1, le=5, description="A revisit scored this or lower opens a complaint"
    )
    complaint_unknown_link_grace_seconds: float = Field(
        3600,
        gt=0,
        description="How long a request or job a complaint names may take to arrive before the link "
        "is flagged unresolved",
    )

    @field_validator("complaint_holidays", "complaint_timezone")
    @classmethod
    def _calendar_is_valid(cls, value: str, info) -> str:
        if info.field_name == "complaint_holidays":
            WorkingCalendar.from_settings(holidays=value)
        else:
            WorkingCalendar(timezone=value)
        return value

    def sla(self) -> ComplaintSla:
        return ComplaintSla(
            acknowledge_within=timedelta(seconds=self.complaint_acknowledge_within_seconds),
            resolve_general_within=timedelta(seconds=self.complaint_resolve_general_within_seconds),
            resolve_serious_working_days=self.complaint_resolve_serious_working_days,
            calendar=WorkingCalendar.from_settings(self.complaint_holidays, self.complaint_timezone),
        )


def create_app(
    settings: ComplaintsSettings | None = None, *, clock: Clock | None = None, configure_logs: bool = True
) -> FastAPI:
    settings = settings or ComplaintsSettings()

    lifespan = kernel_lifespan(
        settings,
        metadata=metadata,
        consumes=CONSUMES,
        clock=clock,
        configure_logs=configure_logs,
        build=lambda parts: Application(
            Kernel(
                **parts.common(),
                projections=PROJECTIONS,
                commands=COMMANDS,
                reactions=REACTIONS,
                provided={
                    ComplaintSla: settings.sla(),
                    ComplaintPolicy: ComplaintPolicy(
                        low_satisfaction=settings.complaint_low_satisfaction,
                        unknown_link_grace=timedelta(seconds=settings.complaint_unknown_link_grace_seconds),
                    ),
                },
                on_deadline=on_deadline,
                deadline_cause=caused_by_deadline,
            )
        ),
    )

    return create_service_app(
        service=SERVICE,
        title="Servicetrail complaints",
        description="Complaints from customers, dealers and the hotline, and from low revisit scores: "
        "acknowledgement and resolution deadlines on a working-day calendar, waiting on the customer, "
        "escalation levels 1-3 (by hand, or by itself when a deadline passes), reopening and appeals.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router],
    )
