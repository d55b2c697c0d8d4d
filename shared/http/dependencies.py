"""What a route gets from its service besides the caller: the service's `Application` (the one entry point of
its commands) and its database for reads. Both are built in the lifespan and kept on `app.state`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from shared.eventstore.database import Database
from shared.kernel import Application


def _application(request: Request) -> Application[Any]:
    application: Application[Any] = request.app.state.application
    return application


def _database(request: Request) -> Database:
    return _application(request).db


CurrentApplication = Annotated[Application[Any], Depends(_application)]
ReadDatabase = Annotated[Database, Depends(_database)]
