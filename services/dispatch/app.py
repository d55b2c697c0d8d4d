"""dispatch's composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, SLAs, clock) and nothing happens at import time."""

from __future__ import annotations

import gc
from typing import Any

from fastapi import FastAPI
from pydantic import Field

from services.dispatch import api, api_workforce
from services.dispatch.application import COMMANDS, DispatchReads
from services.dispatch.reactions import CONSUMES, REACTIONS, sla_deadline_passed
from services.dispatch.read_model import PROJECTIONS, metadata
from services.dispatch.sla import DEFAULT_ACCEPT_MINUTES, DEFAULT_ARRIVE_MINUTES, SlaPolicy
from shared.clock import Clock
from shared.contracts.enums import Priority
from shared.domain import TimeRules
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.http.app import create_service_app
from shared.kernel import Application, Kernel
from shared.kernel.service import kernel_lifespan
from shared.settings import ServiceSettings

SERVICE = "dispatch"


class DispatchSettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8002
    sla_accept_minutes: dict[Priority, float] = Field(
        default_factory=lambda: dict(DEFAULT_ACCEPT_MINUTES),
        description='Minutes from the first assignment to acceptance, per priority (JSON, e.g. {"P1": 30, ...})',
    )
    sla_arrive_minutes: dict[Priority, float] = Field(
        default_factory=lambda: dict(DEFAULT_ARRIVE_MINUTES),
        description="Minutes from the request's receipt to the first arrival, per priority (JSON)",
    )

    def sla_policy(self) -> SlaPolicy:
        return SlaPolicy(accept_minutes=self.sla_accept_minutes, arrive_minutes=self.sla_arrive_minutes)


def dispatch_application(
    *, db: Database, store: EventStore, clock: Clock, time_rules: TimeRules, sla: SlaPolicy
) -> Application[Any]:
    """dispatch's kernel on its parts: what the service runs, and what a test drives without HTTP or a broker."""
    return Application(
        Kernel(
            db=db,
            store=store,
            clock=clock,
            time_rules=time_rules,
            projections=PROJECTIONS,
            commands=COMMANDS,
            reactions=REACTIONS,
            provided={SlaPolicy: sla},
            on_deadline=sla_deadline_passed,
        )
    )


def tune_garbage_collection() -> None:
    """For dispatch's own process, once everything is imported (`python -m services.dispatch`): what is alive
    then (modules, classes, contract models, compiled statements) lives as long as the process, so it is frozen
    out of the cyclic collector's walks; and a young collection runs after 5,000 objects more alive instead of
    700. The consumer path makes and drops many objects per event (envelopes, models, views, rows): in process,
    3,000 requests cost 114 young and a full collection, ~33 µs of CPU per request, ~1 µs with this
    (docs/bench-dispatch.md). Not for a process that builds many apps (tests): what a freeze holds is never
    collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 10, 10)


def create_app(
    settings: DispatchSettings | None = None, *, clock: Clock | None = None, configure_logs: bool = True
) -> FastAPI:
    settings = settings or DispatchSettings()
    sla = settings.sla_policy()  # refuses an incomplete policy before anything starts

    lifespan = kernel_lifespan(
        settings,
        metadata=metadata,
        consumes=CONSUMES,
        clock=clock,
        configure_logs=configure_logs,
        build=lambda parts: dispatch_application(**parts.common(), sla=sla),
        on_start=lambda app, parts, application: setattr(app.state, "dispatch", DispatchReads(parts.db)),
    )

    return create_service_app(
        service=SERVICE,
        title="Servicetrail dispatch",
        description="Service centers and technicians; a job for every request triaged for field work, assigned "
        "automatically or by a dispatcher, accepted, started and completed under SLA; and the follow-up revisit.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router, api_workforce.centers, api_workforce.technicians],
    )
