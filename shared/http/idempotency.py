"""Idempotency-Key for creating POSTs, scoped to the caller and the endpoint, and the unit of work of every
command route.

Same key + same body replays the first answer; another body is a 422. The answer is stored in the same
transaction as the command's effects (`Database.unit_of_work`), so a retry after a crash replays the original
answer: either both the effects and the answer were committed, or neither was and the retry runs afresh. While
the first call runs, another with the key is a 409 (in this process by a set of running keys; across replicas on
PostgreSQL by a transaction-scoped advisory lock on the key; across processes on one SQLite file the write lock
makes it wait and replay). A call that ended in a server error leaves nothing behind (effects rolled back, key
not stored), so the client may retry."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, NamedTuple

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import BigInteger, Boolean, bindparam, column, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import utcnow
from shared.domain import DomainError
from shared.eventstore import lean
from shared.eventstore.database import Database
from shared.eventstore.tables import idempotency_keys
from shared.http.problems import Problem, domain_problem, problem_response
from shared.http.security import principal_of

Produce = Callable[[], Awaitable[Response]]


def _in_use() -> Problem:
    return Problem(409, "A request with this Idempotency-Key is still being processed.", slug="idempotency-key-in-use")


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.running: set[tuple[str, str]] = set()  # keys whose first call runs in this process

    async def lock(self, conn: AsyncConnection, scope: str, key: str) -> None:
        """On PostgreSQL, hold the key for this transaction, or 409 when another replica's call holds it."""
        if self.db.is_sqlite:
            return
        lock_id = int.from_bytes(hashlib.sha256(f"{scope}|{key}".encode()).digest()[:8], "big", signed=True)
        if not (await lean.query(conn, _TRY_LOCK, {"id": lock_id}))[0][0]:
            raise _in_use()

    async def stored_answer(self, conn: AsyncConnection, scope: str, key: str, request_hash: str) -> Response | None:
        """The answer stored for the key, to replay; None when the key is new. Another body: 422."""
        rows = await lean.query(conn, _STORED_ANSWER, {"scope_": scope, "key_": key})
        row = _Stored(*rows[0]) if rows else None
        if row is None or row.state != "done":
            return None  # a 'running' row is a leftover of a version that claimed keys in a transaction of its own
        if row.request_hash != request_hash:
            raise Problem(
                422,
                "This Idempotency-Key was used with a different request body.",
                slug="idempotency-key-reused",
                errors=[{"field": "Idempotency-Key", "reason": "used with another body"}],
            )
        headers = json.loads(row.headers or "{}")
        headers["Idempotent-Replayed"] = "true"
        return Response(row.body, status_code=row.status_code, media_type=row.content_type, headers=headers)

    async def store_answer(
        self, conn: AsyncConnection, scope: str, key: str, request_hash: str, response: Response
    ) -> None:
        """In the caller's transaction. A concurrent call that stored the key first makes this raise
        IntegrityError (unique key), which rolls this call's effects back."""
        now = utcnow()
        values = dict(
            request_hash=request_hash,
            state="done",
            status_code=response.status_code,
            content_type=response.media_type,
            body=bytes(response.body).decode(),
            headers=json.dumps({k: v for k, v in response.headers.items() if k.lower() == "location"}),
            updated_at=now,
        )
        # The UPDATE (of a leftover row) and, for a new key, the INSERT: prepared on the driver (lean.py).
        changes = {f"new_{name}": value for name, value in values.items()}
        row = {**values, "scope": scope, "key": key, "created_at": now}
        await lean.update_else_insert(
            conn, _UPDATE_ANSWER, {**changes, "scope_": scope, "key_": key}, _INSERT_ANSWER, row
        )


class _Stored(NamedTuple):
    state: str
    request_hash: str
    status_code: int  # set on every 'done' row, the only ones replayed
    content_type: str | None
    body: str | None
    headers: str | None


# The key's lock, on the driver too (lean.py): the first statement of a keyed command on PostgreSQL.
_TRY_LOCK = lean.Prepared(
    text("SELECT pg_try_advisory_xact_lock(:id)")
    .bindparams(bindparam("id", type_=BigInteger()))
    .columns(column("locked", Boolean()))
)
_ANSWER_COLUMNS = ["request_hash", "state", "status_code", "content_type", "body", "headers", "updated_at"]
# The key's look-up and its answer's record, compiled once and run on the writer's driver (lean.py).
_STORED_ANSWER = lean.Prepared(
    select(*(idempotency_keys.c[name] for name in _Stored._fields)).where(
        idempotency_keys.c.scope == bindparam("scope_"), idempotency_keys.c.key == bindparam("key_")
    )
)
_UPDATE_ANSWER = lean.Prepared(
    update(idempotency_keys)
    .where(idempotency_keys.c.scope == bindparam("scope_"), idempotency_keys.c.key == bindparam("key_"))
    .values({name: bindparam(f"new_{name}") for name in _ANSWER_COLUMNS})
)
_INSERT_ANSWER = lean.Prepared(idempotency_keys.insert(), columns=["scope", "key", "created_at", *_ANSWER_COLUMNS])


class _Answered(Exception):
    """Leave the unit of work without committing it, with the answer to give."""

    def __init__(self, response: Response) -> None:
        self.response = response


_CONTROL_BYTE = re.compile(rb"[\x00-\x1f\x7f]")


def _check_headers(response: Response) -> None:
    """A header the server cannot send would drop the connection after the commit; fail inside the transaction."""
    for name, value in response.raw_headers:
        if _CONTROL_BYTE.search(value):
            raise ValueError(f"response header {name.decode()!r} carries a control character")


class IdempotentCall:
    """What a command route wraps its work in: `return await idempotent.run(lambda: ...)`. The work runs in
    one unit of work with the stored answer; whatever fails before the answer is ready rolls it all back."""

    def __init__(self, store: IdempotencyStore, scope: str, key: str | None, request_hash: str, path: str) -> None:
        self.store, self.scope, self.key, self.request_hash, self.path = store, scope, key, request_hash, path

    @classmethod
    def without_key(cls, request: Request) -> IdempotentCall:
        """A call without a key: its work runs in a unit of work, and nothing is stored or replayed (the body's
        hash is only ever compared for a key: a call without one does not read or hash it)."""
        return cls(request.app.state.idempotency, "", None, "", _url_path(request))

    async def run(self, produce: Produce) -> Response:
        if self.key is None:
            return await self._run(produce)
        if (self.scope, self.key) in self.store.running:
            raise _in_use()
        self.store.running.add((self.scope, self.key))
        try:
            return await self._run(produce)
        finally:
            self.store.running.discard((self.scope, self.key))

    async def _run(self, produce: Produce) -> Response:
        try:
            async with self.store.db.unit_of_work() as conn:
                if self.key is not None:
                    await self.store.lock(conn, self.scope, self.key)
                    replay = await self.store.stored_answer(conn, self.scope, self.key, self.request_hash)
                    if replay is not None:
                        return replay
                response = await produce()
                _check_headers(response)
                if response.status_code >= 400:
                    raise _Answered(response)  # an answered error: nothing it may have written stays
                if self.key is not None:
                    await self.store.store_answer(conn, self.scope, self.key, self.request_hash, response)
            return response
        except _Answered as answered:
            response = answered.response
        except DomainError as exc:
            response = problem_response(domain_problem(exc), self.path)
        except Problem as exc:
            response = problem_response(exc, self.path)
        except IntegrityError:
            if self.key is None:
                raise
            response = None  # another call stored this key first (PostgreSQL): its answer is the one to give
        if response is not None and (self.key is None or response.status_code >= 500):
            return response
        assert self.key is not None  # no answer of our own comes only from losing the race for a key
        return await self._store_error(self.key, response)

    async def _store_error(self, key: str, response: Response | None) -> Response:
        """Keep a refused call's answer for the key, unless a concurrent call with it has stored its own."""
        try:
            async with self.store.db.unit_of_work() as conn:
                await self.store.lock(conn, self.scope, key)
                replay = await self.store.stored_answer(conn, self.scope, key, self.request_hash)
                if replay is not None:
                    return replay
                if response is None:
                    raise _in_use()
                await self.store.store_answer(conn, self.scope, key, self.request_hash, response)
            return response
        except IntegrityError:
            raise _in_use() from None


async def _idempotent_call(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="Replays the first answer when the same request is sent again",
        ),
    ] = None,
) -> IdempotentCall:
    if idempotency_key is None:
        return IdempotentCall.without_key(request)
    return idempotent_call(request, idempotency_key, await request.body())


def idempotent_call(request: Request, key: str, body: bytes) -> IdempotentCall:
    """The call of a request that carries an Idempotency-Key, scoped to the caller and the route."""
    principal = principal_of(request)
    route = request.scope.get("route")
    endpoint = f"{request.method} {getattr(route, 'path', request.url.path)}"
    scope = f"{principal.subject}|{principal.dealer_id or ''}|{endpoint}"
    request_hash = _request_hash(body, request.url.path)
    return IdempotentCall(request.app.state.idempotency, scope, key, request_hash, request.url.path)


def _url_path(request: Request) -> str:
    """`request.url.path` without building the URL (~10 µs) for the usual path, which it leaves as it is."""
    path: str = request.scope["path"]
    return request.url.path if "?" in path or "#" in path or "\\" in path or "//" in path else path


def _request_hash(raw: bytes, path: str) -> str:
    try:
        canonical = json.dumps(json.loads(raw or b"null"), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(canonical + path.encode()).hexdigest()


Idempotency = Annotated[IdempotentCall, Depends(_idempotent_call)]
