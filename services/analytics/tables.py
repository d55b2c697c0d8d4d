"""analytics' tables.

The projection lives in a *generation* of three tables (`analytics_g<N>_events`, `_requests`, `_revisits`);
`analytics_state` names the active one, and the one a rebuild is filling. A rebuild fills generation N+1
while the views keep answering from N, then switches `active_generation` in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from shared.eventstore.tables import Position, metadata

# One row (id 1): which generation the views read, which one a rebuild fills, and who runs that rebuild.
analytics_state = Table(
    "analytics_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("active_generation", Integer, nullable=False),
    Column("building_generation", Integer),
    Column("rebuild_owner", String(64)),
    Column("rebuild_heartbeat", BigInteger),  # µs since the epoch
)

# Alerts that hold now: one per (kind, scope, key); clearing moves the row to the history.
active_alerts = Table(
    "analytics_active_alerts",
    metadata,
    Column("kind", String(40), primary_key=True),
    Column("scope", String(20), primary_key=True),
    Column("key", String(120), primary_key=True),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("detail", Text, nullable=False),
    Column("raised_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

alert_history = Table(
    "analytics_alert_history",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("scope", String(20), nullable=False),
    Column("key", String(120), nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("detail", Text, nullable=False),
    Column("raised_at", BigInteger, nullable=False),
    Column("cleared_at", BigInteger, nullable=False),
)
Index("ix_analytics_alert_history_cleared", alert_history.c.cleared_at)


@dataclass(frozen=True)
class Generation:
    number: int
    metadata: MetaData
    events: Table
    requests: Table
    revisits: Table


@lru_cache(maxsize=None)
def generation(number: int) -> Generation:
    """The tables of generation `number` (their own MetaData: created on demand, dropped when superseded)."""
    prefix = f"analytics_g{number}"
    meta = MetaData()
    events = Table(
        f"{prefix}_events",
        meta,
        # Arrival order: a rebuild refolds the requests whose events arrived after its bulk fold.
        Column("position", Position, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("type", String(60), nullable=False),
        Column("request_id", String(64)),
        Column("job_id", String(64)),
        Column("time", BigInteger, nullable=False),
        Column("recorded_at", BigInteger, nullable=False),
        Column("sequence", BigInteger, nullable=False),
        Column("data", Text, nullable=False),
        Index(f"ix_{prefix}_events_request", "request_id"),
        Index(f"ix_{prefix}_events_job", "job_id"),
    )
    requests = Table(
        f"{prefix}_requests",
        meta,
        Column("request_id", String(64), primary_key=True),
        Column("received_at", BigInteger),
        Column("dealer_key", String(80)),
        Column("region", String(80)),
        Column("product_line", String(80)),
        Column("triaged_at", BigInteger),
        Column("phone_triaged", Boolean, nullable=False),
        Column("escalated", Boolean, nullable=False),
        Column("cancelled_at", BigInteger),
        Column("first_assigned_at", BigInteger),
        Column("first_arrived_at", BigInteger),
        Column("resolved_at", BigInteger),
        Column("center_id", String(80)),
        Column("technician_id", String(80)),
        Column("jobs_completed", Integer, nullable=False),
        Column("jobs_first_fixed", Integer, nullable=False),
        Column("jobs_sla_met", Integer, nullable=False),
        Column("complaints", Integer, nullable=False),
        Index(f"ix_{prefix}_requests_received", "received_at"),
        Index(f"ix_{prefix}_requests_resolved", "resolved_at"),
        Index(f"ix_{prefix}_requests_dealer", "dealer_key", "received_at"),
    )
    revisits = Table(
        f"{prefix}_revisits",
        meta,
        Column("event_id", String(64), primary_key=True),
        Column("request_id", String(64), nullable=False),
        Column("job_id", String(64), nullable=False),
        Column("time", BigInteger, nullable=False),
        Column("satisfaction", Integer, nullable=False),
        Column("nps", Integer),
        Column("dealer_key", String(80)),
        Column("region", String(80)),
        Column("product_line", String(80)),
        Column("center_id", String(80)),
        Column("technician_id", String(80)),
        Index(f"ix_{prefix}_revisits_time", "time"),
        Index(f"ix_{prefix}_revisits_request", "request_id"),
    )
    return Generation(number, meta, events, requests, revisits)
