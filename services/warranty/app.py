"""warranty's composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, clock, limits) and nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

from fastapi import FastAPI
from pydantic import Field

from services.warranty import api, api_repairs
from services.warranty.application import COMMANDS, WarrantyRules, integrity_conflict
from services.warranty.domain import ReturnLimits
from services.warranty.projections import PROJECTIONS
from services.warranty.queries import WarrantyQueries
from services.warranty.reactions import CONSUMES, REACTIONS
from services.warranty.read_model import metadata
from shared.clock import Clock, SystemClock
from shared.domain import TimeRules
from shared.eventstore.store import EventStore
from shared.eventstore.tables import service_schema
from shared.http.app import create_service_app
from shared.kernel import Application, Kernel
from shared.observability.logging import configure_logging
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings

import services.warranty.timeline  # noqa: F401  (declares the timeline in warranty's metadata)

SERVICE = "warranty"


class WarrantySettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8003
    return_days: int = Field(7, ge=0, description="A unit may be returned up to this many days after its sale")
    exchange_days: int = Field(15, ge=0, description="A unit may be exchanged up to this many days after its sale")
    claim_days: int = Field(30, ge=0, description="A claim may be filed up to this many days after the job's "
                                                  "completion")
    labour_rate_per_hour: Decimal = Field(Decimal("60.00"), ge=0, description="What a claimed labour hour pays")
    currency: str = Field("EUR", min_length=3, max_length=3)
    default_warranty_months: int = Field(
        12, ge=0, description="Coverage of a product line without a policy (0: such units are not covered)")

    def rules(self) -> WarrantyRules:
        return WarrantyRules(ReturnLimits(self.return_days, self.exchange_days), self.claim_days,
                             self.labour_rate_per_hour, self.currency, self.default_warranty_months)


def create_app(settings: WarrantySettings | None = None, *, clock: Clock | None = None,
               configure_logs: bool = True) -> FastAPI:
    settings = settings or WarrantySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if configure_logs:
            configure_logging(SERVICE, settings.log_level, settings.log_json)
        db = ServiceRuntime.database(settings)
        store, rules = EventStore(source=SERVICE), settings.rules()
        application = Application(Kernel(
            db=db, store=store, clock=clock or SystemClock(), time_rules=TimeRules.from_settings(settings),
            projections=PROJECTIONS, commands=COMMANDS, reactions=REACTIONS, provided={WarrantyRules: rules},
            on_integrity_error=integrity_conflict,
        ))
        runtime = ServiceRuntime.build(settings, metadata=service_schema(metadata), db=db, consumes=CONSUMES,
                                       handlers=application.handler_table())
        app.state.clock = application.clock
        app.state.application = application
        app.state.warranty = application
        app.state.warranty_queries = WarrantyQueries(db, store, application.clock, rules)
        async with runtime.serving(app):
            yield

    return create_service_app(
        service=SERVICE,
        title="Servicetrail warranty",
        description="Who pays: products sold, warranty policies, coverage of a serial on a day, part swaps "
        "(covered or billable), dealer claims adjudicated by explicit rules, returns and exchanges (三包), "
        "and one history per unit across dealers.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router, api_repairs.router],
        body_limits={"/v1/products/import": api.MAX_IMPORT_BYTES},
    )
