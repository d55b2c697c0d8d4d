"""intake as `uvicorn --factory services.intake.tests.crashing_app:create` runs it, for crash tests: a request
carrying `X-Test-Crash: after-commit` kills the process (SIGKILL) right after the first commit that stored one
of its events — after the write, before any answer reaches the client. Test code only."""

from __future__ import annotations

import os
import signal
import sqlite3
from contextlib import asynccontextmanager
from contextvars import ContextVar

from services.intake.app import IntakeSettings, create_app
from shared.eventstore.database import Database

_armed: ContextVar[bool] = ContextVar("crash_armed", default=False)
_original_transaction = Database.transaction


def _events_stored(db: Database) -> int:
    with sqlite3.connect(db.url.database) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


@asynccontextmanager
async def _transaction_then_crash(self: Database):
    before = _events_stored(self) if _armed.get() else 0
    async with _original_transaction(self) as conn:
        yield conn
    if _armed.get() and _events_stored(self) > before:
        os.kill(os.getpid(), signal.SIGKILL)


class _ArmOnHeader:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and (b"x-test-crash", b"after-commit") in scope.get("headers", []):
            _armed.set(True)
        await self.app(scope, receive, send)


def create():
    Database.transaction = _transaction_then_crash
    return _ArmOnHeader(create_app(IntakeSettings()))
