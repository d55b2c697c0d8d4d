"""Events of `intake.events` about partners' webhook subscriptions (intake is the partners' front door).

A subscription's secret is never in an event: it lives in intake's database only."""

from __future__ import annotations

from pydantic import Field

from shared.contracts.base import EventData, UtcDateTime, event
from shared.contracts.topics import INTAKE


@event("webhook.subscribed", topic=INTAKE, subject="webhook_id")
class WebhookSubscribed(EventData):
    """A dealer (or an admin, for everything when `dealer_id` is null) subscribed a URL to event types."""

    webhook_id: str
    dealer_id: str | None
    url: str
    types: list[str] = Field(description="Event types and `prefix.*` patterns")
    note: str | None = Field(None, description="The subscriber's own description of it")


@event("webhook.secret_rotated", topic=INTAKE, subject="webhook_id")
class WebhookSecretRotated(EventData):
    """The subscription's signing secret was replaced; the previous one still signs until the given time."""

    webhook_id: str
    dealer_id: str | None
    previous_secret_expires_at: UtcDateTime


@event("webhook.deleted", topic=INTAKE, subject="webhook_id")
class WebhookDeleted(EventData):
    """The subscription was removed; nothing more is delivered to it."""

    webhook_id: str
    dealer_id: str | None


@event("webhook.disabled", topic=INTAKE, subject="webhook_id")
class WebhookDisabled(EventData):
    """Every delivery attempt to the subscription failed for too long, so it was switched off."""

    webhook_id: str
    dealer_id: str | None
    failing_since: UtcDateTime
    reason: str
