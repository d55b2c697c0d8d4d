"""Tables every service has (`metadata`). Each service declares its own tables in a `MetaData` of its own;
`service_schema(own)` is the whole schema of one service (what tests create and migrations compare with)."""

from __future__ import annotations

import operator
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

from shared.clock import as_utc

metadata = MetaData()

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid alias.
Position = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite hands back naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


events = Table(
    "events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("stream_id", String(120), nullable=False),  # `<namespace>:<id>` for ids of up to 80 characters
    Column("stream_type", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(80), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("topic", String(80), nullable=False),
    Column("data", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("causation_id", String(64), nullable=False),
    Column("traceparent", String(60)),
    # Who caused the event (`shared.events.ActorId`: `user:<sub>[;dealer=<id>]`, `system:<service>`): no
    # default, an append must say. Events stored before shared_0003 read `system:unknown`.
    Column("actor", Text, nullable=False),
    UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
)

# The outbox: a row per event that is due for publication, written in the append's transaction and
# deleted by the relay once Kafka acknowledged it.
outbox = Table(
    "outbox",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=False),
)

# Leases let several relay replicas share one outbox: one publishes, the others stand by.
leases = Table(
    "leases",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("owner", String(80), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# Tracking records of idempotent consumers: an event id seen twice has one effect.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(80), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("processed_at", UtcDateTime, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(10), nullable=False),  # running | done
    Column("status_code", Integer),
    Column("content_type", String(80)),
    Column("body", Text),
    Column("headers", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

Index("ix_events_type_position", events.c.type, events.c.position)


SHARED_TABLES = ("events", "outbox", "leases", "processed_events", "idempotency_keys", "deadlines")


# service_schema's answers, by the service's MetaData while it lives, with the tables they were built from.
_schemas: WeakKeyDictionary[MetaData, tuple[tuple[Table, ...], MetaData]] = WeakKeyDictionary()


def service_schema(own: MetaData) -> MetaData:
    """One service's schema: the shared tables and the service's own, in one `MetaData` of their own (built once
    per process for the same tables: copying them is tens of ms, paid by every test that starts a service)."""
    import shared.scheduling  # noqa: F401  (declares `deadlines` in the shared metadata)

    built_from = tuple(metadata.tables[name] for name in SHARED_TABLES) + tuple(own.tables.values())
    known = _schemas.get(own)
    if known is not None and len(known[0]) == len(built_from) and all(map(operator.is_, known[0], built_from)):
        return known[1]
    schema = MetaData()
    for table in built_from:
        table.to_metadata(schema)
    _schemas[own] = (built_from, schema)
    return schema
