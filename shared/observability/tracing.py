"""OpenTelemetry traces across services: HTTP request → event store → relay → Kafka (`traceparent` header) →
every consumer, so that one service request is one trace. Exported over OTLP/HTTP when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set; off by default (spans are then non-recording and cost next to nothing,
but the W3C context still travels with every event)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind

log = logging.getLogger(__name__)

_configured = False


def configure_tracing(service: str, endpoint: str) -> None:
    """Install an OTLP exporting tracer provider once per process, when an endpoint is configured."""
    global _configured
    if not endpoint or _configured:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("exporting traces to %s", endpoint)


def recording() -> bool:
    """Whether spans go anywhere: a tracer provider was installed (an exporter, or a test's recorder). Without
    one every span is non-recording, and a span whose context nothing inside reads can be skipped altogether."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer(service: str) -> trace.Tracer:
    """One tracer per service, so a span names the service it ran in even when services share a process."""
    return trace.get_tracer(f"servicetrail.{service}")


def extract(traceparent: str | None) -> context.Context:
    return propagate.extract({"traceparent": traceparent} if traceparent else {})


def current_traceparent(default: str | None = None) -> str | None:
    """The W3C traceparent of the current span, or `default` when there is no valid one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent") or default


def trace_id_of(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else None


@contextmanager
def span(
    service: str,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[Span]:
    """A span of `service`, child of `parent` (a traceparent) when given, else of the current context."""
    ctx = extract(parent) if parent else None
    attrs = {"servicetrail.service": service, **(attributes or {})}
    with tracer(service).start_as_current_span(name, context=ctx, kind=kind, attributes=attrs) as current:
        yield current
