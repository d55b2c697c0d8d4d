"""`python -m deploy.bench.command_dependency`: CPU per request of a command route with its six separate
dependencies (`Permission`, `CommandMetadata`, `CurrentActor`, `CurrentApplication`, `Idempotency`) next to the
same route with the one `Command(...)`, in one process, rounds interleaved: the ASGI app called directly (no
server), a bearer token and a small JSON body, an application whose `handle` does nothing. What is measured is
FastAPI's routing, the dependencies, the body and the answer: the part of a command route that is not the
command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Annotated, Any

from fastapi import FastAPI

from deploy.bench.http_in_process import post
from shared.auth import Role, TokenVerifier, mint_token
from shared.http.app import ObservabilityMiddleware
from shared.http.commands import Command, CommandCall, CommandMetadata, StrictBody
from shared.http.dependencies import CurrentApplication
from shared.http.idempotency import Idempotency
from shared.http.problems import install_problem_handlers
from shared.http.security import CurrentActor, Permission

SECRET = "x" * 40


class Body(StrictBody):
    name: str


class NoApplication:
    async def handle(self, command: Any, actor: Any, meta: Any) -> dict[str, Any]:
        return {"handled": command}


def bench_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(ObservabilityMiddleware, service="bench")
    app.state.verifier = TokenVerifier(SECRET)
    app.state.application = NoApplication()
    app.state.idempotency = None  # no request sends a key

    @app.post("/separate", status_code=201, dependencies=[Permission(Role.agent, Role.dealer)])
    async def separate(
        body: Body,
        meta: CommandMetadata,
        actor: CurrentActor,
        application: CurrentApplication,
        idempotent: Idempotency,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await application.handle(body.name, actor, meta)
        return result

    @app.post("/combined", status_code=201)
    async def combined(
        body: Body, call: Annotated[CommandCall, Command(Role.agent, Role.dealer, idempotent=True)]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await call.handle(body.name)
        return result

    return app


async def _request(app: FastAPI, path: str, token: str, payload: bytes) -> None:
    status = await post(app, path, token, payload)
    if status != 201:
        raise RuntimeError(f"{path} answered {status}")


async def _measure(requests: int, rounds: int) -> dict[str, list[float]]:
    app = bench_app()
    token = mint_token(SECRET, subject="bench", roles=["agent"])
    payload = json.dumps({"name": "x" * 40}).encode()
    paths = ["/separate", "/combined"]
    for path in paths:
        for _ in range(300):
            await _request(app, path, token, payload)
    results: dict[str, list[float]] = {path: [] for path in paths}
    for number in range(rounds):
        for path in paths if number % 2 == 0 else reversed(paths):
            started = time.process_time()
            for _ in range(requests):
                await _request(app, path, token, payload)
            results[path].append((time.process_time() - started) / requests * 1e6)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.command_dependency", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per route and round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    results = asyncio.run(_measure(args.requests, args.rounds))
    for path, values in results.items():
        rounds = " ".join(f"{v:.0f}" for v in values)
        print(f"{path:10} µs CPU per request: {rounds}   median {sorted(values)[len(values) // 2]:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
