"""What a route gets from its service besides the caller: the service's `Application` (the one entry point of
its commands) and its database for reads. Both are built in the lifespan and kept on `app.state`.

Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread
hop (and a capacity-limiter round) per dependency per request, which cost more than their work."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from shared.eventstore.database import Database
from shared.kernel import Application


async def _application(request: Request) -> Application[Any]:
    application: Application[Any] = request.app.state.application
    return application


async def _database(request: Request) -> Database:
    application: Application[Any] = request.app.state.application
    return application.db


CurrentApplication = Annotated[Application[Any], Depends(_application)]
ReadDatabase = Annotated[Database, Depends(_database)]
