"""The webhook use cases, run by intake's Application like its other commands (one unit of work, one
transaction): subscribe, rotate a secret, delete, redeliver, and the worker's disabling."""

from __future__ import annotations

import base64
import secrets
import uuid

from sqlalchemy import select, update

from services.intake.webhooks.commands import DeleteWebhook, DisableWebhook, Redeliver, RotateSecret, Subscribe
from services.intake.webhooks.domain import WebhookStatus, WebhookSubscription, check_types
from services.intake.webhooks.network import Resolver, checked_addresses
from services.intake.webhooks.queries import delivery_view
from services.intake.webhooks.settings import WebhookSettings
from services.intake.webhooks.tables import webhook_deliveries, webhook_secrets
from services.intake.webhooks.url_policy import check_url
from services.intake.webhooks.views import DeliveryView, RotatedSecret, WebhookView, WebhookWithSecret, to_view
from shared.auth import Actor
from shared.contracts.base import REGISTRY
from shared.domain import InvalidTransition, NotFound
from shared.kernel import UnitOfWork


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def subscribe(
    command: Subscribe, actor: Actor, uow: UnitOfWork, settings: WebhookSettings, resolver: Resolver
) -> WebhookWithSecret:
    types = check_types(command.types, (model.event_type for model in REGISTRY.all()))
    target = check_url(command.url, settings.policy)
    await checked_addresses(target, resolver, settings.policy)
    at = uow.step_time(None)
    webhook_id = str(uuid.uuid4())
    subscription = uow.add(
        WebhookSubscription.subscribe(
            webhook_id,
            dealer_id=command.dealer_id,
            url=command.url,
            types=types,
            description=command.description,
            at=at,
        )
    )
    secret = new_secret()
    await uow.conn.execute(webhook_secrets.insert().values(webhook_id=webhook_id, secret=secret, created_at=at))
    return WebhookWithSecret(**to_view(subscription).model_dump(), secret=secret)


async def rotate_secret(
    command: RotateSecret, actor: Actor, uow: UnitOfWork, settings: WebhookSettings
) -> RotatedSecret:
    subscription = await uow.get_visible(WebhookSubscription, command.webhook_id, actor)
    at = uow.step_time(None, subscription)
    expires_at = at + settings.secret_grace
    subscription.rotate_secret(expires_at, at)
    # The current secret keeps signing until `expires_at`; older ones keep their own (earlier) end.
    await uow.conn.execute(
        update(webhook_secrets)
        .where(webhook_secrets.c.webhook_id == subscription.id, webhook_secrets.c.expires_at.is_(None))
        .values(expires_at=expires_at)
    )
    secret = new_secret()
    await uow.conn.execute(webhook_secrets.insert().values(webhook_id=subscription.id, secret=secret, created_at=at))
    return RotatedSecret(id=subscription.id, secret=secret, previous_secret_expires_at=expires_at)


async def delete_webhook(command: DeleteWebhook, actor: Actor, uow: UnitOfWork) -> WebhookView:
    subscription = await uow.get_visible(WebhookSubscription, command.webhook_id, actor)
    subscription.delete(uow.step_time(None, subscription))
    await uow.conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == subscription.id, webhook_deliveries.c.status == "pending")
        .values(status="cancelled", next_attempt_at=None)
    )
    return to_view(subscription)


async def redeliver(command: Redeliver, actor: Actor, uow: UnitOfWork) -> DeliveryView:
    """Queue a delivery again, now, whatever became of it (a replay): its attempts start afresh, the log stays."""
    subscription = await uow.get_visible(WebhookSubscription, command.webhook_id, actor)
    row = (
        await uow.conn.execute(
            select(webhook_deliveries.c.delivery_id).where(
                webhook_deliveries.c.delivery_id == command.delivery_id,
                webhook_deliveries.c.webhook_id == subscription.id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"delivery {command.delivery_id} of webhook {subscription.id} does not exist")
    if subscription.status != WebhookStatus.active:
        raise InvalidTransition(
            f"a {subscription.status} webhook receives no deliveries", current_status=str(subscription.status)
        )
    await uow.conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.delivery_id == command.delivery_id)
        .values(status="pending", attempts=0, next_attempt_at=uow.clock.now(), lease_until=None)
    )
    return await delivery_view(uow.conn, command.delivery_id)


async def disable_webhook(command: DisableWebhook, actor: Actor, uow: UnitOfWork) -> bool:
    subscription = await uow.find(WebhookSubscription, command.webhook_id)
    if subscription is None:
        return False
    return subscription.disable(command.failing_since, command.reason, uow.step_time(None, subscription))


WEBHOOK_COMMANDS = {
    Subscribe: subscribe,
    RotateSecret: rotate_secret,
    DeleteWebhook: delete_webhook,
    Redeliver: redeliver,
    DisableWebhook: disable_webhook,
}

__all__ = ["WEBHOOK_COMMANDS"]
