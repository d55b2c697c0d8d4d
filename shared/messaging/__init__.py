"""Kafka plumbing: CloudEvents mapping, the outbox relay and the idempotent consumer runner."""
