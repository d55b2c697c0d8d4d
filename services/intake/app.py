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
from services.intake.webhooks import api as webhooks_api
from services.intake.webhooks import tables as _webhook_tables  # noqa: F401  (its tables and projector)
from services.intake.webhooks.application import WEBHOOK_COMMANDS
from services.intake.webhooks.network import Resolver
from services.intake.webhooks.queue import DeliveryQueue, IntakeApplication
from services.intake.webhooks.sender import Sender
from services.intake.webhooks.settings import WebhookSettings
from services.intake.webhooks.worker import DeliveryWorker
from shared.clock import Clock
from shared.http.app import create_service_app
from shared.kernel import Kernel
from shared.kernel.service import ServiceParts, kernel_lifespan
from shared.runtime import BackgroundWorker
from shared.settings import ServiceSettings

SERVICE = "intake"


class IntakeSettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8001
    webhook_allowed_hosts: str = Field(
        "", description="Hosts (comma separated) webhooks may target even on private or loopback addresses"
    )
    webhook_allow_http_for_allowed_hosts: bool = Field(
        False, description="Accept plain http URLs for WEBHOOK_ALLOWED_HOSTS (tests, local receivers); never others"
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="A delivery not answered 2xx in time is retried")
    webhook_retry_schedule: str = Field(
        "5,300,1800,7200,18000,36000",
        description="Seconds before each retry of a failed delivery (then it has failed): about a day",
    )
    webhook_disable_after_seconds: float = Field(
        3 * 86400, gt=0, description="A subscription every delivery to which failed this long is disabled"
    )
    webhook_secret_grace_seconds: float = Field(
        86400, ge=0, description="After a rotation, the previous secret also signs for this long"
    )
    webhook_poll_interval_ms: int = Field(500, ge=10, description="How often the worker looks for due deliveries")
    webhook_concurrency: int = Field(8, ge=1, description="Deliveries in flight at once per intake process")
    webhook_max_response_bytes: int = Field(4096, ge=0, description="How much of a receiver's answer is read")
    webhook_ca_bundle: str = Field("", description="PEM file of the CAs receivers' certificates are checked against")
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
    webhook_settings = WebhookSettings.from_settings(settings)
    resolver = Resolver()

    def build(parts):
        return IntakeApplication(
            Kernel(
                **parts.common(),
                projections=PROJECTIONS,
                commands={**COMMANDS, **WEBHOOK_COMMANDS},
                reactions=REACTIONS,
                provided={QuoteTerms: settings.quote_terms(), WebhookSettings: webhook_settings, Resolver: resolver},
                on_integrity_error=integrity_conflict(parts.db),
                on_deadline=quote_deadline_passed,
            ),
            DeliveryQueue(parts.clock),
        )

    def workers(parts: ServiceParts, application: IntakeApplication) -> dict[str, BackgroundWorker]:
        """Partners' webhooks are delivered by a loop of their own beside the relay and the consumer."""
        sender = Sender(webhook_settings, resolver)
        return {"webhook-deliveries": DeliveryWorker(parts.db, application, parts.clock, webhook_settings, sender)}

    lifespan = kernel_lifespan(
        settings,
        metadata=metadata,
        consumes=CONSUMES,
        clock=clock,
        configure_logs=configure_logs,
        build=build,
        workers=workers,
    )

    return create_service_app(
        service=SERVICE,
        title="Servicetrail intake",
        description="Service requests from dealers, the hotline, the web and the app: triage, escalation, "
        "cancellation, and the request's status as the field work goes on; partners' signed webhooks.",
        version="1.0.0",
        lifespan=lifespan,
        routers=[api.router, webhooks_api.router],
    )
