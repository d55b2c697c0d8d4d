"""Prometheus metrics of the shared mechanisms. Each service process exposes them at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "servicetrail_http_requests_total", "HTTP requests by route and status", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "servicetrail_http_request_seconds",
    "HTTP request latency by route",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RELAY_PUBLISHED = Counter("servicetrail_relay_published_total", "Events the outbox relay published", ["service"])
RELAY_ERRORS = Counter("servicetrail_relay_errors_total", "Failed relay rounds (Kafka or database away)", ["service"])
RELAY_BACKLOG = Gauge("servicetrail_relay_backlog", "Events due for publication", ["service"])
CONSUMED = Counter(
    "servicetrail_consumer_events_total",
    "Events a consumer handled, by outcome (applied, duplicate, ignored, dlq)",
    ["consumer", "topic", "outcome"],
)
CONSUMER_LAG = Gauge(
    "servicetrail_consumer_lag", "Records behind the end of a partition", ["consumer", "topic", "partition"]
)
EVENTS_PUBLISHED = Counter(
    "servicetrail_events_published_total",
    "Domain events published, by type: job.sla_breached counts SLA breaches, complaint.escalated escalations",
    ["service", "type"],
)
