"""Versioned event contracts. Importing this package registers every event model in `REGISTRY`."""

from shared.contracts import complaints, dispatch, intake, warranty, webhooks  # noqa: F401  (registration side effect)
from shared.contracts.base import REGISTRY, EventData, Registry, UtcDateTime, event

__all__ = ["REGISTRY", "EventData", "Registry", "UtcDateTime", "event"]
