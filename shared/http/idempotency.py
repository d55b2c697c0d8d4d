"""Idempotency-Key for creating POSTs, scoped to the caller and the endpoint.

Same key + same body replays the first answer; another body is a 422; while the first call is still
running, a 409. A call that ended in a server error is forgotten, so the client may retry. A key whose first
call died mid-way (process killed) is taken over after `running_timeout` seconds."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated, Awaitable, Callable

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from shared.clock import utcnow
from shared.domain import DomainError
from shared.eventstore.database import Database
from shared.eventstore.tables import idempotency_keys
from shared.http.problems import Problem, domain_problem, problem_response
from shared.http.security import CurrentPrincipal

Produce = Callable[[], Awaitable[Response]]


class IdempotencyStore:
    def __init__(self, db: Database, running_timeout: float = 60.0) -> None:
        self.db = db
        self.running_timeout = timedelta(seconds=running_timeout)

    async def begin(self, scope: str, key: str, request_hash: str) -> Response | None:
        """Claim the key; return the stored answer to replay, or None when this call should run."""
        now = utcnow()
        try:
            async with self.db.transaction() as conn:
                row = (
                    await conn.execute(
                        select(idempotency_keys).where(idempotency_keys.c.scope == scope,
                                                       idempotency_keys.c.key == key)
                    )
                ).first()
                if row is None:
                    await conn.execute(
                        idempotency_keys.insert().values(scope=scope, key=key, request_hash=request_hash,
                                                         state="running", created_at=now, updated_at=now)
                    )
                    return None
                if row.request_hash != request_hash:
                    raise Problem(422, "This Idempotency-Key was used with a different request body.",
                                  slug="idempotency-key-reused",
                                  errors=[{"field": "Idempotency-Key", "reason": "used with another body"}])
                if row.state == "done":
                    headers = json.loads(row.headers or "{}")
                    headers["Idempotent-Replayed"] = "true"
                    return Response(row.body, status_code=row.status_code, media_type=row.content_type,
                                    headers=headers)
                if now - row.updated_at < self.running_timeout:
                    raise Problem(409, "A request with this Idempotency-Key is still being processed.",
                                  slug="idempotency-key-in-use")
                await conn.execute(
                    update(idempotency_keys)
                    .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
                    .values(updated_at=now)
                )
                return None
        except IntegrityError as exc:  # another replica claimed it between our read and insert
            raise Problem(409, "A request with this Idempotency-Key is still being processed.",
                          slug="idempotency-key-in-use") from exc

    async def complete(self, scope: str, key: str, response: Response) -> None:
        headers = {k: v for k, v in response.headers.items() if k.lower() == "location"}
        async with self.db.transaction() as conn:
            await conn.execute(
                update(idempotency_keys)
                .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
                .values(state="done", status_code=response.status_code, content_type=response.media_type,
                        body=bytes(response.body).decode(), headers=json.dumps(headers), updated_at=utcnow())
            )

    async def forget(self, scope: str, key: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
            )


class IdempotentCall:
    """What a creating route wraps its work in: `return await idempotent.run(lambda: ...)`."""

    def __init__(self, store: IdempotencyStore, scope: str, key: str | None, request_hash: str, path: str) -> None:
        self.store, self.scope, self.key, self.request_hash, self.path = store, scope, key, request_hash, path

    async def run(self, produce: Produce) -> Response:
        if self.key is None:
            return await produce()
        replay = await self.store.begin(self.scope, self.key, self.request_hash)
        if replay is not None:
            return replay
        try:
            response = await produce()
        except DomainError as exc:
            response = problem_response(domain_problem(exc), self.path)
        except Problem as exc:
            response = problem_response(exc, self.path)
        except BaseException:
            await self.store.forget(self.scope, self.key)
            raise
        if response.status_code >= 500:
            await self.store.forget(self.scope, self.key)
        else:
            await self.store.complete(self.scope, self.key, response)
        return response


async def _idempotent_call(
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=200,
               description="Replays the first answer when the same request is sent again"),
    ] = None,
) -> IdempotentCall:
    raw = await request.body()
    try:
        canonical = json.dumps(json.loads(raw or b"null"), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    route = request.scope.get("route")
    endpoint = f"{request.method} {getattr(route, 'path', request.url.path)}"
    scope = f"{principal.subject}|{principal.dealer_id or ''}|{endpoint}"
    request_hash = hashlib.sha256(canonical + request.url.path.encode()).hexdigest()
    return IdempotentCall(request.app.state.idempotency, scope, idempotency_key, request_hash, request.url.path)


Idempotency = Annotated[IdempotentCall, Depends(_idempotent_call)]
