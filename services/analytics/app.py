"""analytics' composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, consumer group, clock) and nothing happens at import time."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.analytics import api, dashboard
from services.analytics.application import AnalyticsViews
from services.analytics.monitor import AlertMonitor
from services.analytics.reactions import CONSUMES, ProjectionDeps, handler_table
from services.analytics.settings import SERVICE, AnalyticsSettings
from services.analytics.store import prepare
from shared.clock import Clock, SystemClock
from shared.contracts.base import REGISTRY
from shared.eventstore.tables import metadata
from shared.http.app import create_service_app
from shared.observability.logging import configure_logging
from shared.runtime import ServiceRuntime

import services.analytics.tables  # noqa: F401  (registers analytics' fixed tables in `metadata`)

__all__ = ["AnalyticsSettings", "create_app"]


def create_app(settings: AnalyticsSettings | None = None, *, clock: Clock | None = None,
               configure_logs: bool = True) -> FastAPI:
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if configure_logs:
            configure_logging(SERVICE, settings.log_level, settings.log_json)
        clock_ = clock or SystemClock()
        db = ServiceRuntime.database(settings)
        deps = ProjectionDeps()
        runtime = ServiceRuntime.build(settings, metadata=metadata, db=db, consumes=CONSUMES,
                                       handlers=handler_table(deps))
        # Before the consumer starts: the fixed tables (unless migrations own them), the state row and the
        # active generation's tables (data of the service, created and replaced by rebuilds).
        if settings.database_auto_create:
            await db.create_all(metadata)
        await prepare(db)
        monitor = AlertMonitor(db, clock_, settings.alert_policy(), deps.changed,
                               min_interval=settings.alert_min_interval_seconds,
                               sweep_interval=settings.alert_sweep_seconds)
        views = AnalyticsViews(db, clock_, bootstrap=settings.kafka_bootstrap, registry=REGISTRY,
                               batch_size=settings.rebuild_batch_size, monitor=monitor)
        app.state.views = views
        async with runtime.serving(app):
            monitor_task = asyncio.create_task(monitor.run(), name="alert-monitor")
            try:
                yield
            finally:
                await views.stop()
                await monitor.stop()
                await asyncio.gather(monitor_task, return_exceptions=True)

    return create_service_app(
        service=SERVICE,
        title="Servicetrail analytics",
        description="How the service process performs, step by step: throughput, satisfaction and scorecards "
        "per dealer, center, technician, region, product line, day or month; `as_of` any past moment; alerts; "
        "a replay that rebuilds every view from the topics; and a dashboard at /dashboard.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[*api.routers, dashboard.router],
    )
