"""analytics' tables in its SQL database: the alerts (active, and the history of cleared ones).

The projection itself (events and versioned facts) is in DuckDB (`projection.py`); it is data derived from the
topics, created at start and replaced by rebuilds, so it has no migrations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, MetaData, String, Table, Text

from shared.eventstore.tables import Position

metadata = MetaData()

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
    Column("request_ids", Text, nullable=True),  # JSON list: the requests behind a process finding
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
    Column("request_ids", Text, nullable=True),
)
Index("ix_analytics_alert_history_cleared", alert_history.c.cleared_at)
