"""dispatch's composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, SLAs, clock) and nothing happens at import time."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import Field

from services.dispatch import api, api_workforce
from services.dispatch.application import DispatchApplication, DispatchDeps
from services.dispatch.reactions import CONSUMES, deadline_handler, handler_table
from services.dispatch.sla import DEFAULT_ACCEPT_MINUTES, DEFAULT_ARRIVE_MINUTES, SlaPolicy
from shared.clock import Clock, SystemClock
from shared.contracts.enums import Priority
from shared.domain import TimeRules
from shared.eventstore.store import EventStore
from shared.eventstore.tables import metadata
from shared.http.app import create_service_app
from shared.observability.logging import configure_logging
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings

import services.dispatch.read_model  # noqa: F401  (registers dispatch's tables in `metadata`)

SERVICE = "dispatch"


class DispatchSettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8002
    sla_accept_minutes: dict[Priority, float] = Field(
        default_factory=lambda: dict(DEFAULT_ACCEPT_MINUTES),
        description='Minutes from the first assignment to acceptance, per priority (JSON, e.g. {"P1": 30, ...})')
    sla_arrive_minutes: dict[Priority, float] = Field(
        default_factory=lambda: dict(DEFAULT_ARRIVE_MINUTES),
        description="Minutes from the request's receipt to the first arrival, per priority (JSON)")

    def sla_policy(self) -> SlaPolicy:
        return SlaPolicy(accept_minutes=self.sla_accept_minutes, arrive_minutes=self.sla_arrive_minutes)


def create_app(settings: DispatchSettings | None = None, *, clock: Clock | None = None,
               configure_logs: bool = True) -> FastAPI:
    settings = settings or DispatchSettings()
    sla = settings.sla_policy()  # refuses an incomplete policy before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if configure_logs:
            configure_logging(SERVICE, settings.log_level, settings.log_json)
        db = ServiceRuntime.database(settings)
        deps = DispatchDeps(
            db=db,
            store=EventStore(source=SERVICE),
            clock=clock or SystemClock(),
            time_rules=TimeRules.from_settings(settings),
            sla=sla,
        )
        runtime = ServiceRuntime.build(settings, metadata=metadata, db=db, consumes=CONSUMES,
                                       handlers=handler_table(deps), deadline_handler=deadline_handler(deps),
                                       clock=deps.clock)
        app.state.dispatch = DispatchApplication(deps)
        async with runtime.serving(app):
            yield

    return create_service_app(
        service=SERVICE,
        title="Servicetrail dispatch",
        description="Service centers and technicians; a job for every request triaged for field work, assigned "
        "automatically or by a dispatcher, accepted, started and completed under SLA; and the follow-up revisit.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router, api_workforce.centers, api_workforce.technicians],
    )
