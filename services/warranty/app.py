"""warranty's composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, clock, limits) and nothing happens at import time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from pydantic import Field

import services.warranty.timeline  # noqa: F401  (declares the timeline in warranty's metadata)
from services.warranty import api, api_repairs, parts_api
from services.warranty.application import COMMANDS, WarrantyRules, integrity_conflict
from services.warranty.coverage import normalize_category
from services.warranty.domain import ReturnLimits
from services.warranty.parts_queries import PartsQueries
from services.warranty.projections import PROJECTIONS
from services.warranty.queries import WarrantyQueries
from services.warranty.reactions import CONSUMES, REACTIONS
from services.warranty.read_model import metadata
from shared.clock import Clock
from shared.http.app import create_service_app
from shared.kernel import Application, Kernel
from shared.kernel.service import ServiceParts, kernel_lifespan
from shared.settings import ServiceSettings

SERVICE = "warranty"


class WarrantySettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8003
    return_days: int = Field(7, ge=0, description="A unit may be returned up to this many days after its sale")
    exchange_days: int = Field(15, ge=0, description="A unit may be exchanged up to this many days after its sale")
    claim_days: int = Field(
        30, ge=0, description="A claim may be filed up to this many days after the job's completion"
    )
    labour_rate_per_hour: Decimal = Field(Decimal("60.00"), ge=0, description="What a claimed labour hour pays")
    currency: str = Field("EUR", min_length=3, max_length=3)
    default_warranty_months: int = Field(
        12, ge=0, description="Coverage of a product line without a policy (0: such units are not covered)"
    )

    return_required_categories: str = Field(
        "",
        max_length=2000,
        description="Comma-separated part categories whose defective part must come back before a claim for "
        "their swap is paid (claim rule defective_part_returned); empty: none",
    )

    def rules(self) -> WarrantyRules:
        return WarrantyRules(
            ReturnLimits(self.return_days, self.exchange_days),
            self.claim_days,
            self.labour_rate_per_hour,
            self.currency,
            self.default_warranty_months,
            frozenset(normalize_category(c) for c in self.return_required_categories.split(",") if c.strip()),
        )


def create_app(
    settings: WarrantySettings | None = None, *, clock: Clock | None = None, configure_logs: bool = True
) -> FastAPI:
    settings = settings or WarrantySettings()
    rules = settings.rules()

    def expose_reads(app: FastAPI, parts: ServiceParts, application: Application[Any]) -> None:
        app.state.clock = parts.clock
        app.state.warranty = application
        app.state.warranty_queries = WarrantyQueries(parts.db, parts.store, parts.clock, rules)
        app.state.parts_queries = PartsQueries(parts.db)

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
                provided={WarrantyRules: rules},
                on_integrity_error=integrity_conflict,
            )
        ),
        on_start=expose_reads,
    )

    return create_service_app(
        service=SERVICE,
        title="Servicetrail warranty",
        description="Who pays: products sold, warranty policies, coverage of a serial on a day, part swaps "
        "(covered or billable), the parts ledger (catalogue, stock per location, part requests reserved from the "
        "technician's van, his center or a warehouse, shipped and received; swaps issued from the van; defective-part "
        "returns), dealer claims adjudicated by explicit rules, returns and exchanges (三包), "
        "and one history per unit across dealers.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router, api_repairs.router, parts_api.router],
        body_limits={"/v1/products/import": api.MAX_IMPORT_BYTES},
    )
