"""The HTTP stack every service is built on (`create_service_app`: the body-size limit, the observability
middleware, the problem handlers), pinned on a service of its own so that a change to the stack cannot drift:
a handler's error is a 500 problem without a stack trace, a streamed body without Content-Length is cut off with
a 413 problem, the correlation id comes back, and every answer is counted under its route and status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import REGISTRY

from shared.http.app import create_service_app

router = APIRouter()


@router.post("/echo-length/{name}")
async def echo_length(name: str, request: Request) -> dict[str, int]:
    return {"length": len(await request.body())}


@router.get("/broken/{name}")
async def broken(name: str) -> dict[str, str]:
    raise RuntimeError("secret internals of the failure")


class StackClient(httpx.AsyncClient):
    """A client of a service of its own (its metrics apart from every other test's)."""

    service: str


@pytest.fixture
async def client() -> AsyncIterator[StackClient]:
    service = f"stack-{uuid.uuid4().hex[:8]}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_service_app(
        service=service,
        title="stack",
        description="the shared HTTP stack",
        version="0",
        lifespan=lifespan,
        routers=[router],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with StackClient(transport=transport, base_url="http://stack") as client:
        client.service = service
        yield client


def counted(service: str, method: str, route: str, status: int) -> float:
    labels = {"service": service, "method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("servicetrail_http_requests_total", labels) or 0.0


async def test_a_handler_error_is_a_500_problem_without_a_stack_trace_counted_under_its_route(client):
    response = await client.get("/broken/one")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 500
    assert "Traceback" not in response.text and "secret internals" not in response.text
    assert counted(client.service, "GET", "/broken/{name}", 500) == 1


async def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit_with_a_413_problem(client):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 64 * 1024  # 2.5 MiB in all, over the default 1 MiB, with no Content-Length

    response = await client.post("/echo-length/big", content=chunks())
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert counted(client.service, "POST", "/echo-length/{name}", 413) == 1


async def test_a_streamed_body_within_the_limit_is_read_whole(client):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000

    response = await client.post("/echo-length/small", content=chunks())
    assert response.status_code == 200
    assert response.json() == {"length": 4000}


async def test_each_answer_is_counted_once_under_its_route_template_and_status(client):
    for name in ("a", "b", "c"):
        assert (await client.post(f"/echo-length/{name}", content=b"{}")).status_code == 200
    assert (await client.get("/nowhere")).status_code == 404
    assert counted(client.service, "POST", "/echo-length/{name}", 200) == 3
    assert counted(client.service, "GET", "unmatched", 404) == 1


async def test_the_callers_correlation_id_comes_back_and_a_missing_one_is_made(client):
    given = await client.post("/echo-length/x", content=b"", headers={"X-Correlation-Id": "case-42"})
    assert given.headers["x-correlation-id"] == "case-42"
    made = await client.post("/echo-length/x", content=b"")
    assert uuid.UUID(made.headers["x-correlation-id"])


async def test_a_nul_in_the_query_is_a_400_problem_naming_it(client):
    response = await client.post("/echo-length/x?name=a%00b", content=b"")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "query", "reason": "holds a NUL"}]
