"""What callers (and the delivery worker) ask of intake's webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Subscribe:
    dealer_id: str | None
    url: str
    types: tuple[str, ...]
    description: str | None = None


@dataclass(frozen=True)
class RotateSecret:
    webhook_id: str


@dataclass(frozen=True)
class DeleteWebhook:
    webhook_id: str


@dataclass(frozen=True)
class Redeliver:
    webhook_id: str
    delivery_id: int


@dataclass(frozen=True)
class DisableWebhook:
    """The worker's verdict: every attempt has failed since `failing_since`."""

    webhook_id: str
    failing_since: datetime
    reason: str
