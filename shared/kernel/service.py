"""The lifespan every service's composition root uses: build the database, the service's `Application` and
the runtime (relay, consumer, deadline scheduler) in the lifespan, so tests build the app with their own
settings and nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI
from sqlalchemy import MetaData

from shared.clock import Clock, SystemClock
from shared.domain import TimeRules
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.eventstore.tables import service_schema
from shared.kernel.application import Application
from shared.observability.logging import configure_logging
from shared.runtime import BackgroundWorker, ServiceRuntime
from shared.settings import ServiceSettings

A = TypeVar("A", bound=Application[Any])


@dataclass(frozen=True)
class ServiceParts:
    """What every service's kernel is made of; `common()` gives them as `Kernel` keyword arguments."""

    settings: ServiceSettings
    db: Database
    store: EventStore
    clock: Clock
    time_rules: TimeRules

    def common(self) -> dict[str, Any]:
        return {"db": self.db, "store": self.store, "clock": self.clock, "time_rules": self.time_rules}


def kernel_lifespan(
    settings: ServiceSettings,
    *,
    metadata: MetaData,
    consumes: list[str],
    build: Callable[[ServiceParts], A],
    clock: Clock | None = None,
    configure_logs: bool = True,
    on_start: Callable[[FastAPI, ServiceParts, A], None] | None = None,
    workers: Callable[[ServiceParts, A], Mapping[str, BackgroundWorker]] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """`build` makes the service's Application from the common parts; it is kept on `app.state.application`
    (`on_start` may hang more there, e.g. a reads object). `workers` names the service's own background loops
    (`shared.runtime.BackgroundWorker`), run by the runtime beside the relay, the consumer and the scheduler."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        name = settings.service_name
        if configure_logs:
            configure_logging(name, settings.log_level, settings.log_json)
        db = ServiceRuntime.database(settings)
        parts = ServiceParts(
            settings, db, EventStore(source=name), clock or SystemClock(), TimeRules.from_settings(settings)
        )
        application = build(parts)
        runtime = ServiceRuntime.build(
            settings,
            metadata=service_schema(metadata),
            db=db,
            consumes=consumes,
            handlers=application.handler_table(),
            deadline_handler=application.deadline_handler(),
            clock=parts.clock,
        )
        for name, worker in (workers(parts, application) if workers is not None else {}).items():
            runtime.add_worker(name, worker)
        app.state.application = application
        if on_start is not None:
            on_start(app, parts, application)
        async with runtime.serving(app):
            yield

    return lifespan
