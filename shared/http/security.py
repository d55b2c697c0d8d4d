"""Auth dependencies: permissions are declared on routes, e.g.
`dependencies=[Permission(Role.agent)]`; `CurrentActor` gives the caller to the route as the application's
`Actor` (its dealer and technician scope decided once, in `shared.auth.Actor.of`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import Actor, InvalidToken, Principal, Role, TokenVerifier
from shared.http.problems import Problem

_bearer = HTTPBearer(auto_error=False, description="JWT signed by the deployment's AUTH_SECRET")


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(
            401,
            "A bearer token is required (Authorization: Bearer <JWT>).",
            slug="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        principal = _verifier(request).verify(credentials.credentials)
    except InvalidToken as exc:
        raise Problem(
            401,
            str(exc),
            slug="invalid-token",
            title="Unauthorized",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def Permission(*roles: Role) -> Any:  # noqa: N802 - reads as a declaration on the route
    """A route dependency that lets through callers holding any of `roles` (admin always passes)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has_any(*roles):
            allowed = ", ".join(r.value for r in roles)
            raise Problem(403, f"This action needs one of the roles: {allowed}.", slug="forbidden")
        return principal

    return Depends(check)


async def current_actor(principal: CurrentPrincipal) -> Actor:  # async: no thread hop (see dependencies.py)
    return Actor.of(principal)


CurrentActor = Annotated[Actor, Depends(current_actor)]


def dealer_for(actor: Actor, requested: str | None, *, action: str) -> str | None:
    """The dealer a confined actor acts for: its own, whatever it asked for; asking for another dealer is a
    403 naming the field (`action`: "open requests", "list its own complaints"…)."""
    if actor.dealer_scope is None:
        return requested
    if requested is not None and requested != actor.dealer_scope:
        raise Problem(
            403,
            f"A dealer may only {action}.",
            slug="forbidden",
            errors=[{"field": "dealer_id", "reason": "differs from the token's dealer_id"}],
        )
    return actor.dealer_scope
