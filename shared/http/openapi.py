"""Every status a route can answer is in its OpenAPI document (design.md, HTTP API), as RFC 9457 problems.

Added to the generated document rather than to each route, so that a new route cannot forget them: what a route
can answer follows from what it has — a bearer token (401, 403), a path parameter (404), a command method (409:
a transition not allowed, a concurrent change, an Idempotency-Key in use), a body (400 malformed JSON, 413 over
MAX_BODY_BYTES, 415 for a media type it does not take), parameters or a body (422, replacing FastAPI's own
validation schema, which our problems do not follow), a cursor or any /v1 route (400: a NUL in its path or
query)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

PROBLEM_SCHEMA = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `errors` names the offending fields.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "location": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    400: "Malformed JSON body or cursor, or a NUL character in the path or query",
    401: "Missing or invalid bearer token",
    403: "The token's roles do not allow this, or it acts for another dealer",
    404: "No such resource (or not one this caller may see)",
    409: "Conflict: a transition the state does not allow, a concurrent change, or an Idempotency-Key in use",
    413: "The body is larger than MAX_BODY_BYTES",
    415: "A media type this route does not take",
    422: "Invalid input, or a business rule refused it; `errors` names the fields",
    503: "Not ready: the database or Kafka is unreachable",
}

_COMMANDS = {"post", "put", "patch", "delete"}


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def statuses_of(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer, from what it has."""
    statuses: set[int] = set()
    parameters = operation.get("parameters") or []
    body = operation.get("requestBody")
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if method in _COMMANDS:
        statuses.add(409)
    if body is not None:
        statuses |= {400, 413, 422}
        if set(body.get("content", {})) - {"application/json"}:
            statuses.add(415)
    if parameters:
        statuses.add(422)
    if any(p.get("name") == "cursor" for p in parameters) or path.startswith("/v1/"):
        statuses.add(400)  # a forged cursor; a NUL in the path or query (any route, before routing)
    if path == "/readyz":
        statuses.add(503)
    return statuses


def _document_read_headers(app: FastAPI, schema: dict[str, Any]) -> None:
    """Parameters a route's dependency reads itself rather than through a FastAPI parameter (its
    `openapi_parameters`: the Idempotency-Key of `shared.http.commands.Command`), documented on the route's
    operation where FastAPI would put them: after the path and query parameters, `parameters` before the body."""
    for route in iter_route_contexts(app.routes):  # included routers' routes with their prefixes, as FastAPI's own
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        extra = [p for dep in _dependants(route.dependant) for p in getattr(dep.call, "openapi_parameters", ())]
        if not extra:
            continue
        for method in route.methods or ():
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            if "parameters" in operation:
                operation["parameters"].extend(extra)
                continue
            reordered: dict[str, Any] = {}
            for name in list(operation):
                if name in ("requestBody", "callbacks", "responses") and "parameters" not in reordered:
                    reordered["parameters"] = list(extra)
                reordered[name] = operation.pop(name)
            reordered.setdefault("parameters", list(extra))
            operation.update(reordered)


def _dependants(dependant: Dependant) -> list[Dependant]:
    return [sub for dep in dependant.dependencies for sub in (dep, *_dependants(dep))]


def document_problems(app: FastAPI) -> None:
    """Make `app.openapi()` list every error status of every operation as a problem document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        _document_read_headers(app, schema)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status in sorted(statuses_of(path, method, operation)):
                    responses[str(status)] = _problem(status)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
