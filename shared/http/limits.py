"""Request body size limit: a body larger than `MAX_BODY_BYTES` gets a 413 problem before it is read (and a
NUL character in the path or query a 400).

A declared Content-Length over the limit is answered at once, without reading a byte of the body (and before
authentication: a stranger's 100 MB upload costs nothing). A body without one (chunked) is counted as the app
reads it; the chunk that crosses the limit ends the request with a 413 (raised as an HTTP exception from
`receive`, which the app's problem handler renders). Bulk imports may allow more: `overrides` maps an exact
route path to its own limit."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.problems import Problem, problem_response

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _too_large(limit: int) -> str:
    return f"The request body is larger than this endpoint accepts ({limit} bytes)."


class BodySizeLimitMiddleware:
    """Pure ASGI; the default limit is the running service's `max_body_bytes` setting (read per request, since
    settings are attached in the lifespan)."""

    def __init__(self, app: ASGIApp, overrides: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.overrides = dict(overrides or {})

    def limit_for(self, scope: Scope) -> int:
        if scope["path"] in self.overrides:
            return self.overrides[scope["path"]]
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        return int(getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # NUL is no character of any id or filter, and PostgreSQL refuses it in text: a 400, not a 500.
            where = "path" if "\x00" in scope["path"] else "query"
            response = problem_response(
                Problem(
                    400,
                    "The request's path or query holds a NUL character.",
                    slug="nul-character",
                    errors=[{"field": where, "reason": "holds a NUL"}],
                ),
                scope["path"].replace("\x00", "%00"),
            )
            await response(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = None
        chunked = False
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = None  # the server refuses a malformed Content-Length itself
            if length is not None and length > limit:
                response = problem_response(
                    Problem(
                        413, _too_large(limit), slug="body-too-large", title="Content too large", max_body_bytes=limit
                    ),
                    scope["path"],
                )
                await response(scope, receive, send)
                return
            if length is not None and not chunked:
                # The server frames the body by its Content-Length: no more than `length` bytes can arrive. With
                # a Transfer-Encoding too, h11 frames it by that instead (httptools refuses the pair): counted.
                await self.app(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counting_receive, send)
