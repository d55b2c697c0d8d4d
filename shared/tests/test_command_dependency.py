"""`Command(...)`, the one dependency of a command route: it answers as `Permission` + `CurrentActor` +
`CommandMetadata` + the application + the Idempotency-Key did (the caller checked first, the same problem for a
bad key, the same OpenAPI operation), in one FastAPI solve."""

from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from shared.auth import Role, mint_token
from shared.eventstore.tables import metadata
from shared.http.app import ObservabilityMiddleware
from shared.http.commands import Command, CommandCall, CommandMetadata, StrictBody
from shared.http.dependencies import CurrentApplication
from shared.http.idempotency import Idempotency, IdempotencyStore
from shared.http.openapi import document_problems
from shared.http.problems import install_problem_handlers
from shared.http.security import CurrentActor, Permission
from shared.tests.conftest import SECRET, CountingVerifier, database_with


class Thing(StrictBody):
    name: str


class CountingApplication:
    """Stands for a service's Application: records what each command was handled with."""

    def __init__(self) -> None:
        self.handled: list[tuple[Any, Any, Any]] = []

    async def handle(self, command: Any, actor: Any, meta: Any) -> dict[str, Any]:
        self.handled.append((command, actor, meta))
        return {"name": command, "number": len(self.handled), "dealer": actor.dealer_scope}


def command_app(db: Any) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(ObservabilityMiddleware, service="command-test")  # the request's correlation id
    app.state.verifier = CountingVerifier(SECRET)
    app.state.application = CountingApplication()
    app.state.idempotency = IdempotencyStore(db)

    @app.post("/combined", status_code=201)
    async def combined(
        body: Thing, call: Annotated[CommandCall, Command(Role.agent, Role.dealer, idempotent=True)]
    ) -> JSONResponse:
        async def run() -> JSONResponse:
            return JSONResponse(await call.handle(body.name), status_code=201)

        return await call.run(run)  # type: ignore[return-value]

    @app.post("/unkeyed")
    async def unkeyed(body: Thing, call: Annotated[CommandCall, Command(Role.agent)]) -> dict[str, Any]:
        result: dict[str, Any] = await call.handle(body.name)
        return result

    @app.post("/separate", status_code=201, dependencies=[Permission(Role.agent, Role.dealer)])
    async def separate(
        body: Thing,
        meta: CommandMetadata,
        actor: CurrentActor,
        application: CurrentApplication,
        idempotent: Idempotency,
    ) -> JSONResponse:
        raise AssertionError("only its OpenAPI operation and its problems are compared")

    document_problems(app)  # as create_service_app does: it documents the headers a dependency reads itself
    return app


@pytest.fixture
async def app(tmp_path):
    async with database_with(f"sqlite+aiosqlite:///{tmp_path}/t.db", metadata) as db:
        yield command_app(db)


def bearer(*roles: Role, dealer_id: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, subject='ann', roles=list(roles), dealer_id=dealer_id)}"}


async def post(app: FastAPI, path: str, json: Any, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post(path, json=json, headers=headers)


async def test_a_command_route_documents_the_same_security_parameters_and_responses_as_the_separate_dependencies(
    app,
):
    operations = app.openapi()["paths"]
    combined, separate = operations["/combined"]["post"], operations["/separate"]["post"]
    for part in ("security", "parameters", "responses"):
        assert combined[part] == separate[part], part
    assert [p["name"] for p in combined["parameters"]] == ["Idempotency-Key"]
    assert "parameters" not in operations["/unkeyed"]["post"]
    assert operations["/unkeyed"]["post"]["security"] == [{"HTTPBearer": []}]


async def test_the_caller_is_refused_before_a_bad_idempotency_key_or_body_is_looked_at(app):
    too_long = {"Idempotency-Key": "k" * 201}
    assert (await post(app, "/combined", {"nope": 1}, too_long)).status_code == 401
    forbidden = await post(app, "/combined", {"nope": 1}, {**too_long, **bearer(Role.analyst)})
    assert forbidden.status_code == 403 and forbidden.json()["type"].endswith("forbidden")
    refused = await post(app, "/combined", {"name": "x"}, {**too_long, **bearer(Role.agent)})
    assert refused.status_code == 422 and refused.json()["errors"] == [
        {"field": "header.Idempotency-Key", "location": "header", "reason": "String should have at most 200 characters"}
    ]
    # the same problem as FastAPI's own validation of a `Header(max_length=200)` gives on the separate route
    separate = await post(app, "/separate", {"name": "x"}, {**too_long, **bearer(Role.agent)})
    assert separate.json() == {**refused.json(), "instance": "/separate"}
    assert app.state.application.handled == []


async def test_a_command_gets_the_caller_its_dealer_and_the_requests_correlation_id(app):
    headers = {**bearer(Role.dealer, Role.agent, dealer_id="D-7"), "X-Correlation-Id": "corr-1"}
    response = await post(app, "/unkeyed", {"name": "a"}, headers)
    assert response.status_code == 200 and response.json()["dealer"] == "D-7"
    [(command, actor, meta)] = app.state.application.handled
    assert command == "a" and actor.dealer_scope == "D-7"
    assert meta.correlation_id == "corr-1" and meta.traceparent.startswith("00-")
    assert app.state.verifier.verified == 1


async def test_the_same_idempotency_key_replays_the_first_answer_without_handling_the_command_again(app):
    headers = {**bearer(Role.agent), "Idempotency-Key": "once"}
    first = await post(app, "/combined", {"name": "a"}, headers)
    again = await post(app, "/combined", {"name": "a"}, headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(app.state.application.handled) == 1
    other_body = await post(app, "/combined", {"name": "b"}, headers)
    assert other_body.status_code == 422 and other_body.json()["errors"][0]["field"] == "Idempotency-Key"
    without_key = await post(app, "/combined", {"name": "a"}, bearer(Role.agent))
    assert without_key.status_code == 201 and len(app.state.application.handled) == 2


def solves(app: FastAPI, path: str) -> int:
    """The dependency solves FastAPI makes for the route (every dependant in its tree but the endpoint's own)."""
    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == path)

    def count(dependant: Any) -> int:
        return sum(1 + count(sub) for sub in dependant.dependencies)

    return count(route.dependant)


async def test_a_command_route_costs_one_dependency_solve_and_no_header_parameter_of_fastapis(app):
    assert solves(app, "/unkeyed") == 1
    assert solves(app, "/combined") == 1
    assert solves(app, "/separate") == 6
    combined = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/combined")
    assert not combined.dependant.dependencies[0].header_params
