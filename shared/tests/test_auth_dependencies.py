"""The auth dependencies without the bearer scheme under them: `CurrentActor` on a route without `Permission`
reads the Authorization header as the scheme would (401 problems for a missing, non-bearer or bad token), and a
route with both verifies its token once."""

import httpx
import pytest
from fastapi import FastAPI

from shared.auth import Role, mint_token
from shared.http.problems import install_problem_handlers
from shared.http.security import CurrentActor, Permission
from shared.tests.conftest import SECRET, CountingVerifier


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.verifier = CountingVerifier(SECRET)

    @app.get("/actor-only")
    async def actor_only(actor: CurrentActor) -> dict[str, str | None]:
        return {"audit_id": str(actor.audit_id), "dealer": actor.dealer_scope}

    @app.get("/guarded", dependencies=[Permission(Role.agent)])
    async def guarded(actor: CurrentActor) -> dict[str, str | None]:
        return {"audit_id": str(actor.audit_id)}

    return app


async def get(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path, headers=headers or {})


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "bearer-ish token"],
    ids=["missing", "empty", "scheme-only", "scheme-and-space", "basic", "other-scheme"],
)
async def test_a_route_with_only_the_actor_answers_401_asking_for_a_bearer_token_without_one(app, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await get(app, "/actor-only", headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token is required" in response.json()["detail"]


async def test_a_route_with_only_the_actor_refuses_a_forged_token_as_invalid(app):
    token = mint_token("another-secret-that-is-long-enough", subject="ann", roles=[Role.agent])
    response = await get(app, "/actor-only", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_route_with_only_the_actor_knows_the_caller_and_its_dealer_whatever_the_scheme_case(app):
    token = mint_token(SECRET, subject="dora", roles=[Role.dealer, Role.agent], dealer_id="D-7")
    response = await get(app, "/actor-only", {"Authorization": f"bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"audit_id": "user:dora;dealer=D-7", "dealer": "D-7"}


async def test_a_guarded_route_verifies_its_token_once_for_the_permission_and_the_actor(app):
    token = mint_token(SECRET, subject="ann", roles=[Role.agent])
    response = await get(app, "/guarded", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"audit_id": "user:ann"}
    assert app.state.verifier.verified == 1


async def test_a_guarded_route_refuses_a_token_without_the_role_before_the_actor_is_built(app):
    token = mint_token(SECRET, subject="ann", roles=[Role.analyst])
    response = await get(app, "/guarded", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
