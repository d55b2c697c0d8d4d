"""The knobs of intake's webhooks, read from the environment with the rest of intake's settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.intake.webhooks.domain import parse_schedule
from services.intake.webhooks.url_policy import UrlPolicy


@dataclass(frozen=True)
class WebhookSettings:
    policy: UrlPolicy
    timeout_seconds: float = 10.0
    retry_schedule: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    disable_after: timedelta = timedelta(days=3)
    secret_grace: timedelta = timedelta(hours=24)
    poll_interval: float = 0.5
    concurrency: int = 8
    max_response_bytes: int = 4096
    ca_bundle: str | None = None

    @classmethod
    def from_settings(cls, settings) -> WebhookSettings:
        return cls(
            policy=UrlPolicy.of(settings.webhook_allowed_hosts, settings.webhook_allow_http_for_allowed_hosts),
            timeout_seconds=settings.webhook_timeout_seconds,
            retry_schedule=parse_schedule(settings.webhook_retry_schedule),
            disable_after=timedelta(seconds=settings.webhook_disable_after_seconds),
            secret_grace=timedelta(seconds=settings.webhook_secret_grace_seconds),
            poll_interval=settings.webhook_poll_interval_ms / 1000,
            concurrency=settings.webhook_concurrency,
            max_response_bytes=settings.webhook_max_response_bytes,
            ca_bundle=settings.webhook_ca_bundle or None,
        )
