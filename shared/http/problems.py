"""RFC 9457 problem details for every error, so that no client ever sees a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.domain import Conflict, DomainError, Forbidden, InvalidTransition, NotFound, RuleViolation
from shared.eventstore.store import ConcurrencyError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raise from an entrypoint to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _TITLES.get(status, "error").lower().replace(" ", "-")
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers
        self.extra = extra


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in problem.extra.items() if v is not None})
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def domain_problem(exc: DomainError) -> Problem:
    extra = dict(exc.extra)
    if exc.field:
        extra["errors"] = [{"field": exc.field, "reason": exc.detail}]
    if isinstance(exc, NotFound):
        return Problem(404, exc.detail, slug="not-found", **extra)
    if isinstance(exc, InvalidTransition):
        return Problem(409, exc.detail, slug="invalid-transition", title="Transition not allowed", **extra)
    if isinstance(exc, Conflict):
        return Problem(409, exc.detail, slug="conflict", **extra)
    if isinstance(exc, Forbidden):
        return Problem(403, exc.detail, slug="forbidden", **extra)
    if isinstance(exc, RuleViolation):
        return Problem(422, exc.detail, slug="rule-violation", title="Business rule violated", **extra)
    return Problem(422, exc.detail, slug="rule-violation", **extra)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def validation_problem(exc: RequestValidationError) -> Problem:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        reason = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        return Problem(
            400,
            f"The request body is not valid JSON: {reason}".rstrip(": "),
            slug="malformed-json",
            title="Malformed JSON",
        )
    details = [
        {
            "field": _field_path(tuple(e.get("loc", ()))),
            "location": str(e.get("loc", ("body",))[0]),
            "reason": e.get("msg", "invalid"),
        }
        for e in errors
    ]
    summary = "; ".join(f"{d['field']}: {d['reason']}" for d in details[:5])
    return Problem(
        422, f"The request is not valid: {summary}", slug="validation-error", title="Validation failed", errors=details
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(DomainError)
    async def on_domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(domain_problem(exc), request.url.path)

    @app.exception_handler(ConcurrencyError)
    async def on_concurrency(request: Request, exc: ConcurrencyError) -> JSONResponse:
        return problem_response(
            Problem(
                409,
                "Another change to the same record was saved first; read it again and retry.",
                slug="concurrent-update",
            ),
            request.url.path,
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        return problem_response(
            Problem(exc.status_code, detail, headers=getattr(exc, "headers", None)), request.url.path
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(500, "Something went wrong on our side; it has been logged.", slug="internal-error"),
            request.url.path,
        )
