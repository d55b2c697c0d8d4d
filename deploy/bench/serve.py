"""`python -m deploy.bench.serve intake|bare PORT`: one uvicorn worker on uvloop + httptools, no access log.

Both apps run in exactly this configuration, so that the only difference the bench sees is the work."""

from __future__ import annotations

import sys
import uuid

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def bare_app() -> FastAPI:
    """The ceiling: reads the JSON body and answers 201, without any I/O."""
    app = FastAPI(title="bare")

    @app.post("/v1/service-requests", status_code=201)
    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"id": str(uuid.uuid4()), "serial": body["product"]["serial"]}, status_code=201)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def intake_app() -> FastAPI:
    """The real intake service, configured from the environment like `python -m services.intake`."""
    from services.intake.app import IntakeSettings, create_app

    return create_app(IntakeSettings())


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    app = {"bare": bare_app, "intake": intake_app}[kind]()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        log_level="warning",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
