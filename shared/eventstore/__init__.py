"""Append-only event store with optimistic concurrency, and the transactional outbox beside it."""

from shared.eventstore.database import Database
from shared.eventstore.store import ConcurrencyError, EventStore, NewEvent

__all__ = ["ConcurrencyError", "Database", "EventStore", "NewEvent"]
