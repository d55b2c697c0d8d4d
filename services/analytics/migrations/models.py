"""The tables analytics owns besides the shared ones.

The projection is not here: it lives in DuckDB (events and versioned facts, a generation the service creates at
start and each rebuild replaces), derived from the topics, so it needs no migrations. What stays in SQL: the
alerts and their history."""

from services.analytics.tables import metadata

__all__ = ["metadata"]
