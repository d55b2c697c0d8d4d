"""intake's composition root: everything is wired in the lifespan, so tests can build the app with their own
settings (database file, broker, clock) and nothing happens at import time."""

from __future__ import annotations

from decimal import Decimal

from fastapi import FastAPI
from pydantic import Field

from services.intake import api
from services.intake.application import COMMANDS, integrity_conflict, quote_deadline_passed
from services.intake.quotes import QuoteTerms
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
    labour_rate_per_hour: Decimal = Field(
        Decimal("60.00"), ge=0, decimal_places=2, description="What an hour of paid-service labour costs in a quote"
    )
    currency: str = Field(
        "EUR", min_length=3, max_length=3, description="The one currency of quotes (warranty's catalogue uses it)"
    )
    quote_valid_days: float = Field(
        14, gt=0, le=365, description="Days a quote may be accepted before it expires (fractions allowed)"
    )

    def quote_terms(self) -> QuoteTerms:
        return QuoteTerms(self.labour_rate_per_hour, self.currency, self.quote_valid_days)


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
                provided={QuoteTerms: settings.quote_terms()},
                on_integrity_error=integrity_conflict(parts.db),
                on_deadline=quote_deadline_passed,
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
