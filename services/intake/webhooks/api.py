"""The partners' webhook routes: subscribe, list and read subscriptions, their delivery log, redeliver,
rotate the secret, delete. Dealers act on their own subscriptions only (404 for others'); admins on all."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from services.intake.webhooks.commands import DeleteWebhook, Redeliver, RotateSecret, Subscribe
from services.intake.webhooks.queries import list_deliveries, list_webhooks, webhook_view
from services.intake.webhooks.views import DeliveryView, RotatedSecret, WebhookView, WebhookWithSecret
from shared.auth import Role
from shared.http.commands import Command, CommandCall, StrictBody, create_once
from shared.http.dependencies import ReadDatabase
from shared.http.pagination import Cursor, Limit, Page, keyset_after
from shared.http.security import CurrentActor, Permission, dealer_for

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

# Admin always passes a Permission; a dealer token (whatever else it holds) stays confined to its dealer.
PARTNERS = Permission(Role.dealer)


class SubscribeBody(StrictBody):
    url: str = Field(min_length=8, max_length=2000, description="https URL that receives the deliveries")
    types: list[Annotated[str, Field(min_length=1, max_length=120)]] = Field(
        min_length=1, max_length=50, description="Event types (`job.completed`) or patterns (`job.*`, `*`)"
    )
    description: str | None = Field(None, max_length=500)
    dealer_id: str | None = Field(
        None,
        min_length=1,
        max_length=80,
        description="Whose cases it receives: a dealer's own (from its token); admins may name one, or none for all",
    )


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    cancelled = "cancelled"


WebhookId = Annotated[str, Path(min_length=1, max_length=64, description="The subscription's id")]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The delivery's id")]


async def visible_webhook(webhook_id: WebhookId, actor: CurrentActor, db: ReadDatabase) -> WebhookView:
    """The subscription named in the path, if the caller may see it (404 otherwise)."""
    return await webhook_view(db, webhook_id, actor)


VisibleWebhook = Annotated[WebhookView, Depends(visible_webhook)]


@router.post(
    "",
    status_code=201,
    responses={201: {"model": WebhookWithSecret}},
    response_class=JSONResponse,
)
async def subscribe(
    body: SubscribeBody, call: Annotated[CommandCall, Command(Role.dealer, idempotent=True)]
) -> Response:
    """Subscribe a URL to event types of the caller's cases (its requests and their jobs, swaps, claims,
    complaints; an admin's subscription without `dealer_id` receives everything). The answer holds the
    `whsec_…` secret that signs every delivery (Standard Webhooks): keep it, it is not shown again. Only
    https URLs whose host resolves to public addresses are accepted (422 naming `url`)."""
    command = Subscribe(
        dealer_id=dealer_for(call.actor, body.dealer_id, action="subscribe to its own cases"),
        url=body.url,
        types=tuple(body.types),
        description=body.description,
    )
    return await create_once(call, command, WebhookWithSecret, "/v1/webhooks")


@router.get("", dependencies=[PARTNERS], response_model=Page[WebhookView])
async def list_subscriptions(
    actor: CurrentActor, db: ReadDatabase, limit: Limit = 50, cursor: Cursor = None
) -> Page[WebhookView]:
    """Subscriptions, newest first: a dealer's own, or all for an admin."""
    return await list_webhooks(db, actor, limit=limit, after=keyset_after(cursor, int))


@router.get("/{webhook_id}", dependencies=[PARTNERS], response_model=WebhookView)
async def get_subscription(webhook: VisibleWebhook) -> WebhookView:
    """One subscription (without its secret)."""
    return webhook


@router.delete("/{webhook_id}", response_model=WebhookView)
async def delete_subscription(webhook_id: WebhookId, call: Annotated[CommandCall, Command(Role.dealer)]) -> WebhookView:
    """Remove a subscription: its pending deliveries are cancelled, nothing more is sent."""
    view: WebhookView = await call.handle(DeleteWebhook(webhook_id))
    return view


@router.get("/{webhook_id}/deliveries", dependencies=[PARTNERS], response_model=Page[DeliveryView])
async def list_subscription_deliveries(
    webhook: VisibleWebhook,
    db: ReadDatabase,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DeliveryView]:
    """The delivery log, newest first: each delivery's status, attempts (answer code, error, duration) and
    next attempt."""
    return await list_deliveries(
        db, webhook.id, status=status.value if status else None, limit=limit, after=keyset_after(cursor, int)
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryView,
)
async def redeliver(
    webhook_id: WebhookId, delivery_id: DeliveryId, call: Annotated[CommandCall, Command(Role.dealer)]
) -> DeliveryView:
    """Send a delivery again (a missed or failed one, or a replay): it is queued now, in its case's order, with
    the same `webhook-id` (receivers that saw it already drop it)."""
    view: DeliveryView = await call.handle(Redeliver(webhook_id, delivery_id))
    return view


@router.post("/{webhook_id}/rotate-secret", response_model=RotatedSecret)
async def rotate_secret(webhook_id: WebhookId, call: Annotated[CommandCall, Command(Role.dealer)]) -> RotatedSecret:
    """Replace the signing secret. Until `previous_secret_expires_at` (WEBHOOK_SECRET_GRACE_SECONDS) every
    delivery carries a signature with each secret, so receivers can switch without missing one."""
    view: RotatedSecret = await call.handle(RotateSecret(webhook_id))
    return view


__all__ = ["router"]
