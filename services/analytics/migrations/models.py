"""The tables analytics owns besides the shared ones (importing the module registers them).

The projection is not here: it lives in DuckDB (events and versioned facts, a generation the service creates at
start and each rebuild replaces), derived from the topics, so it needs no migrations. What stays in SQL: the
alerts and their history."""

import services.analytics.tables  # noqa: F401

TABLES = ["analytics_active_alerts", "analytics_alert_history"]
