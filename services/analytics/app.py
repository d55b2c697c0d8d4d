"""analytics' composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (DuckDB file, SQL database, broker, consumer group, clock) and nothing happens at import time."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.analytics import api, commerce_api, dashboard, process_api
from services.analytics.application import AnalyticsViews
from services.analytics.consumer import BatchProjectionConsumer
from services.analytics.monitor import AlertMonitor
from services.analytics.projection import Projection
from services.analytics.records import CONSUMES
from services.analytics.settings import SERVICE, AnalyticsSettings
from services.analytics.tables import metadata
from shared.clock import Clock, SystemClock
from shared.contracts.base import REGISTRY
from shared.eventstore.tables import service_schema
from shared.http.app import create_service_app
from shared.observability.logging import configure_logging
from shared.runtime import ServiceRuntime

__all__ = ["AnalyticsSettings", "create_app"]


def projection_consumer(
    settings: AnalyticsSettings, projection: Projection, db, changed: asyncio.Event
) -> BatchProjectionConsumer:
    group = settings.consumer_group or SERVICE
    return BatchProjectionConsumer(
        projection=projection,
        changed=changed,
        db=db,
        name=group,
        topics=CONSUMES,
        service=SERVICE,
        consumer_factory=ServiceRuntime.consumer_factory(
            settings, CONSUMES, group, max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20
        ),
        producer_factory=ServiceRuntime.dead_letter_producer_factory(settings),
        registry=REGISTRY,
        batch_size=settings.analytics_batch_size,
    )


def create_app(
    settings: AnalyticsSettings | None = None, *, clock: Clock | None = None, configure_logs: bool = True
) -> FastAPI:
    settings = settings or AnalyticsSettings()
    process_api.finding_rules()  # a HANDOFF_TARGETS naming no step fails the start, not the first request

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if configure_logs:
            configure_logging(SERVICE, settings.log_level, settings.log_json)
        clock_ = clock or SystemClock()
        db = ServiceRuntime.database(settings)
        # The SQL database keeps what every service has (idempotency keys…) and the alerts; the projection is
        # in DuckDB, fed by analytics' own batch consumer (the runtime's per-event consumer is not started).
        runtime = ServiceRuntime.build(settings, metadata=service_schema(metadata), db=db, consumes=[])
        projection = await asyncio.to_thread(
            Projection, settings.duckdb_path(), memory_limit=settings.analytics_duckdb_memory_limit
        )
        changed = asyncio.Event()
        consumer = projection_consumer(settings, projection, db, changed)
        monitor = AlertMonitor(
            projection,
            db,
            clock_,
            settings.alert_policy(),
            changed,
            min_interval=settings.alert_min_interval_seconds,
            sweep_interval=settings.alert_sweep_seconds,
            max_busy_share=settings.alert_max_busy_share,
            finding_rules=process_api.finding_rules(),
        )
        views = AnalyticsViews(
            projection,
            db,
            clock_,
            bootstrap=settings.kafka_bootstrap,
            registry=REGISTRY,
            batch_size=settings.rebuild_batch_size,
            monitor=monitor,
        )
        app.state.views = views
        app.state.consumer = consumer
        app.state.projection = projection
        runtime.add_worker("projection-consumer", consumer)
        runtime.add_worker("alert-monitor", monitor)
        try:
            # The runtime stops the consumer like its own loops: it finishes its batch; one stuck on a broker that
            # went away is cancelled (its uncommitted batch is re-read and deduplicated at the next start).
            async with runtime.serving(app):
                if projection.needs_rebuild:  # a file of an older schema: answer from an empty one meanwhile
                    views.start_rebuild()
                try:
                    yield
                finally:
                    await views.stop()
        finally:
            await asyncio.to_thread(projection.close)

    return create_service_app(
        service=SERVICE,
        title="Servicetrail analytics",
        description="How the service process performs, step by step: throughput, satisfaction and scorecards "
        "per dealer, center, technician, region, product line, day or month; `as_of` any past moment; alerts; "
        "a replay that rebuilds every view from the topics; and a dashboard at /dashboard.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[*api.routers, process_api.router, commerce_api.router, dashboard.router],
    )
