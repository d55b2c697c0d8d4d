"""What the webhook routes answer: a subscription, the secret once (at creation and rotation), and the
delivery log."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.intake.webhooks.domain import WebhookStatus, WebhookSubscription


class WebhookView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    dealer_id: str | None = Field(description="The dealer whose cases it receives; null: everything (admin)")
    url: str
    types: list[str]
    description: str | None
    status: WebhookStatus
    created_at: datetime
    disabled_at: datetime | None = None


class WebhookWithSecret(WebhookView):
    secret: str = Field(description="`whsec_…`: verifies the `webhook-signature` of deliveries; shown only now")


class RotatedSecret(BaseModel):
    id: str
    secret: str = Field(description="The new `whsec_…` secret; shown only now")
    previous_secret_expires_at: datetime = Field(description="Until then deliveries are signed with both")


class AttemptView(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryView(BaseModel):
    id: int
    webhook_id: str
    event_id: str = Field(description="Also the `webhook-id` header: receivers dedupe by it")
    event_type: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int = Field(description="Attempts made since it was (re)queued")
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[AttemptView] = Field(default_factory=list, description="Every attempt, oldest first")


def to_view(subscription: WebhookSubscription) -> WebhookView:
    assert subscription.status is not None and subscription.created_at is not None
    return WebhookView(
        id=subscription.id,
        dealer_id=subscription.dealer_id,
        url=subscription.url,
        types=subscription.types,
        description=subscription.description,
        status=subscription.status,
        created_at=subscription.created_at,
        disabled_at=subscription.disabled_at,
    )
