"""Auth dependencies: permissions are declared on routes, e.g.
`dependencies=[Permission(Role.agent)]`; `CurrentActor` gives the caller to the route as the application's
`Actor` (its dealer and technician scope decided once, in `shared.auth.Actor.of`).

Every request's token is verified once (`principal_of`: the first dependency that needs the caller verifies it,
the others find it on the request), and a token already verified by this process is not verified again until it
expires (`VerifiedTokens`). FastAPI solves a dependency's whole sub-tree again wherever it appears (a cached value
is looked up only after its sub-dependencies were solved), and each solve costs tens of microseconds, so no
dependency here depends on another: `Permission` depends on the bearer scheme (which puts the scheme on the
route's OpenAPI operation; every route that needs a caller declares one), `CurrentActor` and the Idempotency-Key
find the principal `Permission` verified on the request (or read the header themselves, as the scheme would).
A command route pays one bearer solve, not three."""

from __future__ import annotations

import base64
import json
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from shared.auth import Actor, InvalidToken, Principal, Role, TokenVerifier
from shared.http.problems import Problem

BEARER_DESCRIPTION = "JWT signed by the deployment's AUTH_SECRET"
_bearer = HTTPBearer(auto_error=False, description=BEARER_DESCRIPTION)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class Unset:
    """`principal_of` called without the bearer scheme's answer (None is an answer: no token)."""


_UNSET = Unset()


class VerifiedTokens:
    """Tokens whose signature and claims this process has verified, with when each expires: a token seen again
    before its `exp` is the same principal (its signature, issuer and claims cannot have changed: it is the same
    string), so it is not decoded and verified again. A token past its `exp` is verified afresh (and refused as
    expired). Bounded: when full, the cache starts over."""

    def __init__(self, verifier: TokenVerifier, size: int = 4096) -> None:
        self.verifier, self.size = verifier, size
        self._known: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        known = self._known.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        principal = self.verifier.verify(token)  # raises InvalidToken, expired included
        expires = _expiry(token)
        if expires is not None:
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[token] = (principal, expires)
        return principal


def _expiry(token: str) -> float | None:
    """The `exp` of a token whose signature was just verified (the verifier requires it), or None."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        expires = claims.get("exp")
        return float(expires) if isinstance(expires, int | float) and not isinstance(expires, bool) else None
    except (ValueError, IndexError, AttributeError):
        return None


def _verified_tokens(request: Request) -> VerifiedTokens:
    state = request.app.state
    tokens: VerifiedTokens | None = getattr(state, "verified_tokens", None)
    verifier: TokenVerifier = state.verifier
    if tokens is None or tokens.verifier is not verifier:
        tokens = state.verified_tokens = VerifiedTokens(verifier)
    return tokens


def _bearer_credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    """What the bearer scheme (`HTTPBearer(auto_error=False)`) answers for this request, read the same way."""
    authorization = request.headers.get("Authorization")
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)


def principal_of(request: Request, credentials: HTTPAuthorizationCredentials | None | Unset = _UNSET) -> Principal:
    """The caller of this request, verified once per request (kept as `request.state.principal`); 401 without a
    valid bearer token. `credentials`: the bearer scheme's answer when the dependency has it, else the
    Authorization header is read here."""
    state = request.scope.setdefault("state", {})
    principal: Principal | None = state.get("principal")
    if principal is not None:
        return principal
    if isinstance(credentials, Unset):
        credentials = _bearer_credentials(request)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(
            401,
            "A bearer token is required (Authorization: Bearer <JWT>).",
            slug="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        principal = _verified_tokens(request).verify(credentials.credentials)
    except InvalidToken as exc:
        raise Problem(
            401,
            str(exc),
            slug="invalid-token",
            title="Unauthorized",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc
    state["principal"] = principal
    return principal


async def authenticate(request: Request, credentials: Credentials) -> Principal:
    return principal_of(request, credentials)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def Permission(*roles: Role) -> Any:  # noqa: N802 - reads as a declaration on the route
    """A route dependency that lets through callers holding any of `roles` (admin always passes)."""

    async def check(request: Request, credentials: Credentials) -> Principal:
        return permitted_principal(request, roles, credentials)

    return Depends(check)


def permitted_principal(
    request: Request, roles: tuple[Role, ...], credentials: HTTPAuthorizationCredentials | None | Unset = _UNSET
) -> Principal:
    """The caller (`principal_of`), if it holds any of `roles` (admin always passes); 403 otherwise."""
    principal = principal_of(request, credentials)
    if not principal.has_any(*roles):
        allowed = ", ".join(r.value for r in roles)
        raise Problem(403, f"This action needs one of the roles: {allowed}.", slug="forbidden")
    return principal


async def current_actor(request: Request) -> Actor:  # async: no thread hop
    return Actor.of(principal_of(request))


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
