"""intake's composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, clock) and nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.intake import api
from services.intake.application import COMMANDS, integrity_conflict
from services.intake.reactions import CONSUMES, REACTIONS
from services.intake.read_model import PROJECTIONS, metadata
from shared.clock import Clock, SystemClock
from shared.domain import TimeRules
from shared.eventstore.store import EventStore
from shared.eventstore.tables import service_schema
from shared.http.app import create_service_app
from shared.kernel import Application, Kernel
from shared.observability.logging import configure_logging
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings

SERVICE = "intake"


class IntakeSettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8001


def create_app(settings: IntakeSettings | None = None, *, clock: Clock | None = None,
               configure_logs: bool = True) -> FastAPI:
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if configure_logs:
            configure_logging(SERVICE, settings.log_level, settings.log_json)
        db = ServiceRuntime.database(settings)
        application = Application(Kernel(
            db=db, store=EventStore(source=SERVICE), clock=clock or SystemClock(),
            time_rules=TimeRules.from_settings(settings), projections=PROJECTIONS,
            commands=COMMANDS, reactions=REACTIONS, on_integrity_error=integrity_conflict(db),
        ))
        runtime = ServiceRuntime.build(settings, metadata=service_schema(metadata), db=db, consumes=CONSUMES,
                                       handlers=application.handler_table())
        app.state.application = application
        async with runtime.serving(app):
            yield

    return create_service_app(
        service=SERVICE,
        title="Servicetrail intake",
        description="Service requests from dealers, the hotline, the web and the app: triage, escalation, "
        "cancellation, and the request's status as the field work goes on.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router],
    )
