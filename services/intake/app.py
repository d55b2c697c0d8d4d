"""intake's composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, clock) and nothing happens at import time."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import api
from services.intake.application import COMMANDS, integrity_conflict
from services.intake.reactions import CONSUMES, REACTIONS
from services.intake.read_model import PROJECTIONS, metadata
from shared.clock import Clock
from shared.http.app import create_service_app
from shared.kernel import Application, Kernel
from shared.kernel.service import kernel_lifespan
from shared.settings import ServiceSettings

SERVICE = "intake"


class IntakeSettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8001


def create_app(
    settings: IntakeSettings | None = None, *, clock: Clock | None = None, configure_logs: bool = True
) -> FastAPI:
    settings = settings or IntakeSettings()

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
                on_integrity_error=integrity_conflict(parts.db),
            )
        ),
    )

    return create_service_app(
        service=SERVICE,
        title="Servicetrail intake",
        description="Service requests from dealers, the hotline, the web and the app: triage, escalation, "
        "cancellation, and the request's status as the field work goes on.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router],
    )
