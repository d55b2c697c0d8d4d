"""Every status a route can answer is in its OpenAPI document, as an RFC 9457 problem (design.md, HTTP API):
checked on every operation of every service, and against what the routes answer a caller without a token."""

import functools
import importlib

import httpx
import pytest

SERVICES = ["intake", "dispatch", "warranty", "complaints", "analytics"]
OPS = {"/healthz", "/readyz", "/metrics"}


@functools.cache  # one app per service for both tests: building one and its OpenAPI document is ~0.1 s of CPU
def app_of(service: str):
    return importlib.import_module(f"services.{service}.app").create_app(configure_logs=False)


def operations(app):
    for path, ops in app.openapi()["paths"].items():
        for method, operation in ops.items():
            yield path, method, operation


def problem_statuses(operation) -> set[int]:
    return {
        int(status)
        for status, response in operation["responses"].items()
        if "application/problem+json" in response.get("content", {})
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_its_error_statuses_as_problems(service):
    app = app_of(service)
    assert app.openapi()["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]
    for path, method, operation in operations(app):
        documented = problem_statuses(operation)
        where = f"{method.upper()} {path}: {sorted(documented)}"
        if path.startswith("/v1/"):
            assert {400, 401, 403} <= documented, where
        if "{" in path:
            assert 404 in documented, where
        if method == "post":
            assert 409 in documented, where
        if operation.get("parameters"):
            assert 422 in documented, where
        if "requestBody" in operation:
            assert {400, 413, 422} <= documented, where
        assert "HTTPValidationError" not in str(operation["responses"]), where


@pytest.mark.parametrize("service", SERVICES)
async def test_what_a_caller_without_a_token_gets_is_documented(service):
    app = app_of(service)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path, method, operation in operations(app):
            if path in OPS:
                continue
            url = path.replace("{", "").replace("}", "")
            answer = await client.request(method.upper(), url, json={} if "requestBody" in operation else None)
            assert str(answer.status_code) in operation["responses"], (method, path, answer.status_code)
            assert answer.headers["content-type"] == "application/problem+json"
