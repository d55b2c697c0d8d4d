"""`python -m deploy.bench`: throughput of intake's durable POST next to a bare FastAPI app, and of the
outbox relay next to a raw aiokafka producer, on this machine; writes docs/benchmarks.md."""
