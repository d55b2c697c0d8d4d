"""HTTP conventions every service shares: problems, auth dependencies, idempotency, pagination, health."""
