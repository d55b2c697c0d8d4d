"""What every command route needs besides its body, as one dependency: `Command(*roles)` (see `CommandCall`),
a strict body base, and the answers of a command (`created`, `validated`, `create_once`).

A command route declares `call: Annotated[CommandCall, Command(Role.agent)]` (`idempotent=True` for the routes
that take an Idempotency-Key) and nothing else of the service: the caller's permission, its `Actor`, the
command's metadata (correlation id from `X-Correlation-Id` or a fresh one, the caller's `traceparent`), the
service's `Application` and the Idempotency-Key come together, from one FastAPI dependency solve instead of six:
each solve costs ~18-20 µs, more than the work of most of them."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, field_validator

from shared.auth import Actor, Principal, Role
from shared.eventstore.store import Metadata, new_metadata
from shared.http.idempotency import IdempotentCall, Produce, idempotent_call
from shared.http.security import BEARER_DESCRIPTION, permitted_principal
from shared.kernel import Application
from shared.observability.tracing import current_traceparent, recording

# C0 control characters and DEL, except tab, line feed and carriage return (a description may have lines). NUL
# is refused by PostgreSQL text columns, the others break headers and logs and mean nothing in a field.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _refuse_control_characters(value: object) -> None:
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ValueError("may not contain control characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_control_characters(key)
            _refuse_control_characters(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_control_characters(item)


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields (a typo such as `occured_at` is a 422, not silently ignored) and
    control characters in any string, nested ones included (a 422 naming the field, before anything is written)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        _refuse_control_characters(value)
        return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A moment with its UTC offset, converted to UTC as it is read: `0001-01-01T00:00:00+14:00` has no UTC time, a
422 naming the field rather than an overflow deep in a command."""


class _RenderedJSON(JSONResponse):
    """A JSONResponse whose body is JSON already (a view's own serialization), not rendered again."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


def created(view: BaseModel, collection: str, resource_id: str) -> JSONResponse:
    """The answer of a creating command: 201, the view (validated when it was built), and its `Location`. A
    response object rather than the model, because an Idempotency-Key stores and replays it as it is. The body
    is the view's own JSON (pydantic's serializer, as the read model stores it), not a dict dumped again."""
    return _RenderedJSON(
        view.model_dump_json().encode(), status_code=201, headers={"Location": location(collection, resource_id)}
    )


def validated(
    view: type[BaseModel], data: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The answer of a command whose handler builds its view as a dict (dispatch, warranty): checked against the
    view model first, then kept as a response (an Idempotency-Key replays it as it is)."""
    body = view.model_validate(data).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def create_once(
    call: CommandCall, command: object, view: type[BaseModel], collection: str | None = None, key: str = "id"
) -> Response:
    """Run a creating command once per Idempotency-Key and answer 201 with its view: the view model the handler
    built (`created`; intake, complaints), or the dict it built checked against `view` (`validated`; dispatch,
    warranty). With `collection`, the `Location` of the new resource is `<collection>/<the view's key>` (a
    report such as an import's has none)."""

    async def run() -> Response:
        result = await call.handle(command)
        if collection is None:  # a report (an import's): no resource to point at
            return validated(view, result, 201)
        if isinstance(result, BaseModel):
            return created(result, collection, getattr(result, key))
        return validated(view, result, 201, {"Location": location(collection, result[key])})

    return await call.run(run)


def location(collection: str, resource_id: str) -> str:
    """A `Location` header for a created resource: the id percent-encoded, since ids chosen by callers may hold
    any character and a header carries only Latin-1 without controls."""
    return f"{collection}/{quote(resource_id, safe='')}"


async def command_metadata(request: Request) -> Metadata:  # async: no thread hop (see dependencies.py)
    return metadata_of(request)


def metadata_of(request: Request) -> Metadata:
    """The caller's W3C `traceparent` is kept; without one, the command starts a trace of its own, so that
    every event of the chain carries a trace id that consumers and logs can follow."""
    incoming = request.headers.get("traceparent")
    # Only a recording tracer can have put a span of this request in the context (FastAPI's SERVER span).
    traceparent = current_traceparent(incoming) if recording() else incoming
    if traceparent is None or not _TRACEPARENT.fullmatch(traceparent) or traceparent.split("-")[1] == "0" * 32:
        ids = secrets.token_hex(24)  # trace id and span id from one draw (one getrandom call, not two)
        traceparent = f"00-{ids[:32]}-{ids[32:]}-01"
    return new_metadata(request.scope.get("state", {}).get("correlation_id"), traceparent)


_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


CommandMetadata = Annotated[Metadata, Depends(command_metadata)]


class CommandCall:
    """What a command route gets from `Command(...)`: the caller as the application's `actor`, the command's
    `meta`, the service's `application`, and `idempotent`, the Idempotency-Key's call (without a key, or on a
    route that takes none, it runs the work in a unit of work and stores nothing)."""

    __slots__ = ("actor", "application", "idempotent", "meta")

    def __init__(self, actor: Actor, meta: Metadata, application: Application[Any], idempotent: IdempotentCall) -> None:
        self.actor, self.meta, self.application, self.idempotent = actor, meta, application, idempotent

    async def handle(self, command: Any) -> Any:
        """The command, handled by the service's application as this caller, with this request's metadata."""
        return await self.application.handle(command, self.actor, self.meta)

    async def run(self, produce: Produce) -> Response:
        """`produce`'s answer, once per Idempotency-Key (see `shared.http.idempotency`)."""
        return await self.idempotent.run(produce)


IDEMPOTENCY_KEY_MAX_LENGTH = 200
_IDEMPOTENCY_KEY_DESCRIPTION = "Replays the first answer when the same request is sent again"
# The Idempotency-Key as FastAPI documents an optional `Header(max_length=200)` (shared.http.openapi adds it to
# the operations of `Command(..., idempotent=True)`): the header is read by the scheme itself, not by a FastAPI
# header parameter, whose per-request validation cost more than the rest of the dependency.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {
        "anyOf": [{"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH}, {"type": "null"}],
        "description": _IDEMPOTENCY_KEY_DESCRIPTION,
        "title": "Idempotency-Key",
    },
    "description": _IDEMPOTENCY_KEY_DESCRIPTION,
}


class _CommandScheme(HTTPBearer):
    """The bearer scheme of a command route (the same `HTTPBearer` security scheme on its OpenAPI operation as
    every other route's) that lets through callers holding one of `roles` and answers the route's
    `CommandCall`: verifying the caller, checking its roles, reading the Idempotency-Key and gathering the rest
    in one solve. The caller comes first: a 401/403 before a bad key's 422."""

    def __init__(self, roles: tuple[Role, ...], idempotent: bool) -> None:
        super().__init__(auto_error=False, description=BEARER_DESCRIPTION, scheme_name="HTTPBearer")
        self.roles, self.idempotent = roles, idempotent
        self.openapi_parameters = [IDEMPOTENCY_KEY_PARAMETER] if idempotent else []

    async def __call__(self, request: Request) -> CommandCall:  # type: ignore[override]  # the call, not credentials
        principal: Principal = permitted_principal(request, self.roles)
        application: Application[Any] = request.app.state.application
        key = request.headers.get("idempotency-key") if self.idempotent else None
        if key is None:
            idempotent = IdempotentCall.without_key(request)
        else:
            if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:  # as FastAPI's validation of the header said it
                raise RequestValidationError(
                    [
                        {
                            "type": "string_too_long",
                            "loc": ("header", "Idempotency-Key"),
                            "msg": f"String should have at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters",
                            "input": key,
                            "ctx": {"max_length": IDEMPOTENCY_KEY_MAX_LENGTH},
                        }
                    ]
                )
            idempotent = idempotent_call(request, key, await request.body())
        return CommandCall(Actor.of(principal), metadata_of(request), application, idempotent)


def Command(*roles: Role, idempotent: bool = False) -> Any:  # noqa: N802 - reads as a declaration on the route
    """The one dependency of a command route: lets through callers holding any of `roles` (admin always passes)
    and gives the route its `CommandCall`. `idempotent=True`: the route takes an Idempotency-Key (documented as
    an optional header of the operation, at most 200 characters)."""
    return Depends(_CommandScheme(roles, idempotent))
