"""The chaos suite: a whole Servicetrail (its own Kafka broker or 3-node cluster, the five services as real
processes on free ports and temporary SQLite files) under bounded load while faults are injected, then the
invariants of design.md checked and printed as a table. `python -m deploy.chaos` (make chaos) runs the full
profile; deploy/tests/test_chaos_short.py runs a short one in `make test`; deploy.chaos.fuzz fuzzes every
service's OpenAPI with schemathesis."""
