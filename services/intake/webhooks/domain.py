"""The webhook subscription aggregate and the pure rules of webhooks: which event types a subscription may
name and receives, whose case an event is, and when a failed delivery is tried again. Pure: no web, database
or network here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.contracts.base import EventData
from shared.contracts.webhooks import WebhookDeleted, WebhookDisabled, WebhookSecretRotated, WebhookSubscribed
from shared.domain import Aggregate, InvalidTransition, RuleViolation

MAX_TYPES = 50


class WebhookStatus(StrEnum):
    active = "active"
    disabled = "disabled"
    deleted = "deleted"


# --- event types and patterns ---------------------------------------------------------------------------


def pattern_matches(pattern: str, event_type: str) -> bool:
    """`job.*` matches every type starting with `job.`; `*` matches every type; anything else is exact."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def check_types(types: Iterable[str], known: Iterable[str]) -> list[str]:
    """The subscription's types, deduplicated in order; a type or pattern that names no known event type is a
    422 naming `types`."""
    known = sorted(set(known))
    wanted = list(dict.fromkeys(t.strip() for t in types))
    if not wanted:
        raise RuleViolation("name at least one event type or pattern", field="types")
    if len(wanted) > MAX_TYPES:
        raise RuleViolation(f"at most {MAX_TYPES} event types or patterns", field="types")
    unknown = [t for t in wanted if not any(pattern_matches(t, k) for k in known)]
    if unknown:
        raise RuleViolation(
            f"unknown event type or pattern matching no event type: {', '.join(unknown)}", field="types"
        )
    return wanted


def wants(types: Iterable[str], event_type: str) -> bool:
    return any(pattern_matches(t, event_type) for t in types)


# --- whose case an event is -----------------------------------------------------------------------------

# The ids an event may name that lead to a request (and so to its dealer), most telling first.
CASE_ID_FIELDS = ("job_id", "claim_id", "complaint_id", "swap_id")


@dataclass(frozen=True)
class CaseRefs:
    """What an event's data names: its request, its other case ids (`job:<id>`…), and a dealer if it says."""

    request_id: str | None
    case_ids: tuple[str, ...]
    dealer_id: str | None


def case_refs(data: Mapping[str, Any]) -> CaseRefs:
    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) and value else None

    case_ids = tuple(f"{name.removesuffix('_id')}:{text(name)}" for name in CASE_ID_FIELDS if text(name))
    return CaseRefs(text("request_id"), case_ids, text("dealer_id"))


def case_key(refs: CaseRefs, request_id: str | None, source: str, subject: str) -> str:
    """The key deliveries are kept in order by (per subscription): the request when known, else the first
    case id the event names, else its own subject."""
    if request_id:
        return f"request:{request_id}"
    if refs.case_ids:
        return refs.case_ids[0]
    return f"{source}:{subject}"


# --- retries --------------------------------------------------------------------------------------------

DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)  # 5s, 5m, 30m, 2h, 5h, 10h ≈ 17.6h


def parse_schedule(text: str) -> tuple[float, ...]:
    """`"5,300,1800"` → the delays (seconds) before the 2nd, 3rd… attempt."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if not delays or any(d <= 0 for d in delays):
        raise ValueError("a retry schedule is a comma-separated list of positive seconds")
    return delays


def next_attempt_after(failed_attempts: int, at: datetime, schedule: tuple[float, ...]) -> datetime | None:
    """When to try again after the `failed_attempts`-th failure at `at`; None when the schedule is spent
    (the delivery has failed)."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    return at + timedelta(seconds=schedule[failed_attempts - 1])


def should_disable(failing_since: datetime | None, now: datetime, disable_after: timedelta) -> bool:
    """A subscription every attempt to which has failed for `disable_after` is switched off."""
    return failing_since is not None and now - failing_since >= disable_after


# --- the subscription aggregate -------------------------------------------------------------------------


@dataclass
class WebhookSubscription(Aggregate):
    stream_type = "webhook"

    status: WebhookStatus | None = None
    dealer_id: str | None = None
    url: str = ""
    types: list[str] = field(default_factory=list)
    description: str | None = None
    created_at: datetime | None = None
    disabled_at: datetime | None = None

    @classmethod
    def subscribe(
        cls,
        webhook_id: str,
        *,
        dealer_id: str | None,
        url: str,
        types: list[str],
        description: str | None,
        at: datetime,
    ) -> WebhookSubscription:
        subscription = cls(id=webhook_id)
        subscription.record(
            WebhookSubscribed(webhook_id=webhook_id, dealer_id=dealer_id, url=url, types=types, note=description),
            at,
        )
        return subscription

    def _live(self, action: str) -> None:
        if self.status != WebhookStatus.active:
            raise InvalidTransition(f"a {self.status} webhook cannot be {action}", current_status=str(self.status))

    def rotate_secret(self, previous_expires_at: datetime, at: datetime) -> None:
        self._live("rotated")
        self.record(
            WebhookSecretRotated(
                webhook_id=self.id, dealer_id=self.dealer_id, previous_secret_expires_at=previous_expires_at
            ),
            at,
        )

    def delete(self, at: datetime) -> None:
        if self.status == WebhookStatus.deleted:
            raise InvalidTransition("the webhook is already deleted", current_status=str(self.status))
        self.record(WebhookDeleted(webhook_id=self.id, dealer_id=self.dealer_id), at)

    def disable(self, failing_since: datetime, reason: str, at: datetime) -> bool:
        """Switch off an active subscription; False when it is not active any more (nothing recorded)."""
        if self.status != WebhookStatus.active:
            return False
        self.record(
            WebhookDisabled(webhook_id=self.id, dealer_id=self.dealer_id, failing_since=failing_since, reason=reason),
            at,
        )
        return True

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        if isinstance(data, WebhookSubscribed):
            self.status = WebhookStatus.active
            self.dealer_id = data.dealer_id
            self.url = data.url
            self.types = list(data.types)
            self.description = data.note
            self.created_at = occurred_at
        elif isinstance(data, WebhookDeleted):
            self.status = WebhookStatus.deleted
        elif isinstance(data, WebhookDisabled):
            self.status = WebhookStatus.disabled
            self.disabled_at = occurred_at
