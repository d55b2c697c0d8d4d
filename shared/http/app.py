"""The FastAPI application every service is built on: problems, auth, metrics, health, correlation ids."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.limits import BodySizeLimitMiddleware
from shared.http.openapi import document_problems
from shared.http.problems import Problem, install_problem_handlers, problem_response
from shared.observability.logging import correlation_id, trace_id
from shared.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.observability.tracing import trace_id_of

ReadinessCheck = Callable[[], Awaitable[None]]


class ObservabilityMiddleware:
    """Pure ASGI: sets the correlation id for logs and events, and records rate and latency per route.

    The metric children of each (method, route, status) are looked up once and kept: `labels()` takes a lock and
    builds its key on every call."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, traceparent = "", None
        for name, value in scope.get("headers") or ():
            if name == b"x-correlation-id":
                incoming = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1") or None
        cid = incoming if 0 < len(incoming) <= 64 else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = cid
        token = correlation_id.set(cid)
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-correlation-id", cid.encode())]
            await send(message)

        start = time.perf_counter()
        # The SERVER span itself is FastAPI's own (native OpenTelemetry, active when a tracer provider is
        # configured); logs of this request carry the caller's trace id.
        trace_token = trace_id.set(trace_id_of(traceparent))
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"]
            counter = self._counters.get((method, path, status))
            if counter is None:
                counter = self._counters[(method, path, status)] = HTTP_REQUESTS.labels(
                    self.service, method, path, str(status)
                )
            latency = self._latencies.get((method, path))
            if latency is None:
                latency = self._latencies[(method, path)] = HTTP_LATENCY.labels(self.service, method, path)
            counter.inc()
            latency.observe(time.perf_counter() - start)
            correlation_id.reset(token)
            trace_id.reset(trace_token)


def _runtime_checks(app: FastAPI) -> Sequence[ReadinessCheck]:
    runtime = app.state.runtime
    return [runtime.database_reachable, runtime.kafka_reachable]


def create_service_app(
    *,
    service: str,
    title: str,
    description: str,
    version: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    routers: Sequence[APIRouter],
    readiness: Callable[[FastAPI], Sequence[ReadinessCheck]] | None = None,
    body_limits: dict[str, int] | None = None,
) -> FastAPI:
    """`readiness` lists the checks of /readyz; by default the runtime's database and Kafka checks.
    `body_limits`: route paths allowed a larger body than `MAX_BODY_BYTES` (bulk imports)."""
    readiness = readiness or _runtime_checks
    # FastAPI's native telemetry asks on every request whether a tracer, meter or logger provider is configured
    # (each a walk of os.environ while none is: 15 µs a request). A service's traces are OpenTelemetry's (the
    # SERVER span is FastAPI's, when `configure_tracing` set a provider); its metrics are Prometheus'
    # (`/metrics`) and its logs its own, never OpenTelemetry's: only the tracing question is asked (5 µs).
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        telemetry={"tracing": True, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, overrides=body_limits)
    app.add_middleware(ObservabilityMiddleware, service=service)

    @app.get("/healthz", tags=["ops"], summary="Process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Database and Kafka are reachable")
    async def readyz(request: Request) -> Response:
        failures = {}
        for check in readiness(request.app):
            name = getattr(check, "__name__", "check")
            try:
                await asyncio.wait_for(check(), 2.0)
            except Exception as exc:
                failures[name] = str(exc) or type(exc).__name__
        if failures:
            return problem_response(
                Problem(
                    503,
                    "Not ready: " + "; ".join(f"{k}: {v}" for k, v in failures.items()),
                    slug="not-ready",
                    checks=failures,
                )
            )
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    document_problems(app)
    return app
