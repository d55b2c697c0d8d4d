"""JWT auth: who is calling, with which roles, and for which dealer.

Tokens are HS256 with `AUTH_SECRET` by default, RS256 with `AUTH_PUBLIC_KEY` in production. Claims: `sub`,
`roles`, `dealer_id` (dealers only), `exp`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import jwt

from shared.clock import utcnow
from shared.events import ActorId


class Role(StrEnum):
    admin = "admin"
    agent = "agent"
    dispatcher = "dispatcher"
    technician = "technician"
    warranty_officer = "warranty_officer"
    complaints_officer = "complaints_officer"
    analyst = "analyst"
    dealer = "dealer"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or its signature does not verify."""


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    dealer_id: str | None = None

    @property
    def is_dealer(self) -> bool:
        """A token with the dealer role is confined to its dealer's data, whatever other roles it carries
        (a dealer's own technician, say); only admin lifts the confinement."""
        return Role.dealer in self.roles and Role.admin not in self.roles

    @property
    def dealer_scope(self) -> str | None:
        """The one confinement rule every service applies: the dealer whose rows alone this token may see and
        change (404 for anything else), or None when unconfined. A dealer token stays confined whatever other
        roles (agent, dispatcher, technician…) it also carries; only admin lifts it."""
        return self.dealer_id if self.is_dealer else None

    def has_any(self, *roles: Role) -> bool:
        return Role.admin in self.roles or bool(self.roles & set(roles))

    def can_see_dealer(self, dealer_id: str | None) -> bool:
        return not self.is_dealer or (dealer_id is not None and dealer_id == self.dealer_id)


# Roles whose holders work on every job: with one of them, a technician token is not confined to its own jobs.
STAFF_ROLES: frozenset[Role] = frozenset(
    {Role.admin, Role.agent, Role.dispatcher, Role.analyst, Role.warranty_officer, Role.complaints_officer}
)


@dataclass(frozen=True)
class Actor:
    """Who acts, as the application layer of every service sees it: the one place the scope rules live.

    - `dealer_scope`: the dealer whose rows alone the actor may see and change (`Principal.dealer_scope`: a
      dealer token stays confined whatever other roles it carries; only admin lifts it).
    - `technician_scope`: a technician token without a staff role is confined to the jobs assigned to its
      `sub` (for a dealer's own technician the dealer confinement is the one that decides visibility).
    Rows outside the scope are answered as if they did not exist (404).
    - `audit_id`: who the events of its commands say caused them (`user:<sub>`, with the dealer of a dealer
      token; `system:<name>` for the service itself)."""

    subject: str
    roles: frozenset[Role] = frozenset()
    dealer_scope: str | None = None
    technician_scope: str | None = None
    dealer_id: str | None = None  # the dealer of a dealer token (also when admin lifts its confinement)
    is_system: bool = False

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        technician = Role.technician in principal.roles and not principal.roles & STAFF_ROLES
        return cls(
            principal.subject,
            principal.roles,
            principal.dealer_scope,
            principal.subject if technician else None,
            dealer_id=principal.dealer_id if Role.dealer in principal.roles else None,
        )

    @classmethod
    def system(cls, subject: str = "system") -> Actor:
        """The service itself (reactions, deadlines): unconfined, and `system:<subject>` in the audit. A tool
        run on behalf of a person (a bulk import with a token) acts as that person's `Actor.of(principal)`."""
        return cls(subject, frozenset({Role.admin}), is_system=True)

    @property
    def audit_id(self) -> ActorId:
        """The `actor` every event of this actor's commands carries."""
        if self.is_system:
            return ActorId.system(self.subject)
        return ActorId.user(self.subject, self.dealer_id)

    def sees_dealer(self, dealer_id: str | None) -> bool:
        """Whether a row of `dealer_id` is visible to this actor."""
        return self.dealer_scope is None or dealer_id == self.dealer_scope

    def sees_technician(self, technician_id: str | None) -> bool:
        """Whether a job assigned to `technician_id` is visible to this actor."""
        return self.technician_scope is None or technician_id == self.technician_scope

    def sees(self, dealer_id: str | None, technician_id: str | None = None) -> bool:
        """The one visibility rule of a row (a request, a job, a claim…): a dealer-confined actor sees its
        dealer's rows and nothing else, whatever its other roles (its own technicians' too); otherwise a
        technician sees the jobs assigned to them; staff see everything."""
        if self.dealer_scope is not None:
            return dealer_id == self.dealer_scope
        return self.sees_technician(technician_id)


class TokenVerifier:
    def __init__(self, secret: str, public_key: str = "", issuer: str = "") -> None:
        self.key = public_key or secret
        self.algorithms = ["RS256"] if public_key else ["HS256"]
        self.issuer = issuer or None

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from exc
        raw_roles = claims.get("roles", [])
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
            raise InvalidToken("the token's roles claim is not a list of role names")
        try:
            roles = frozenset(Role(r) for r in raw_roles)
        except ValueError as exc:
            raise InvalidToken(f"the token names an unknown role: {exc}") from exc
        if not roles:
            raise InvalidToken("the token has no roles")
        dealer_id = claims.get("dealer_id")
        if dealer_id is not None and (not isinstance(dealer_id, str) or not 0 < len(dealer_id) <= 80):
            raise InvalidToken("the token's dealer_id claim is not a dealer id (a string of 1-80 characters)")
        if Role.dealer in roles and not dealer_id:
            raise InvalidToken("a dealer token needs a dealer_id claim")
        if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 200:
            raise InvalidToken("the token's sub claim is not a subject (a string of 1-200 characters)")
        return Principal(subject=str(claims["sub"]), roles=roles, dealer_id=dealer_id)


def mint_token(
    secret: str,
    *,
    subject: str,
    roles: list[str],
    dealer_id: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    issuer: str = "",
    algorithm: str = "HS256",
) -> str:
    """A signed token (for development, tests and the command-line tool)."""
    now = utcnow()
    claims: dict[str, object] = {"sub": subject, "roles": [Role(r).value for r in roles], "iat": now, "exp": now + ttl}
    if dealer_id:
        claims["dealer_id"] = dealer_id
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=algorithm)
