"""Run a service app in-process with its lifespan (relay and consumer included) and talk to it over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from types import FunctionType, MethodType
from typing import Any, TypeVar, cast

import httpx
from fastapi import FastAPI, params
from fastapi.datastructures import DefaultPlaceholder
from starlette.datastructures import State

from shared.auth import mint_token
from shared.messaging import memory
from shared.settings import ServiceSettings
from shared.testing.kafka import caught_up

T = TypeVar("T")

# Idle apps whose routing is built, by what they route (`_routing_key`): one per service and pytest process
# normally, a second while a test runs two replicas of one service at once.
_idle_routers: dict[Hashable, list[FastAPI]] = {}
_MAX_ROUTINGS = 32


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """`app`'s lifespan (its own database, relay, consumer, workers and `app.state`) and a client of its routes.

    FastAPI builds a route's dependants on the first request an app receives, per app: 20-50 ms of CPU for each
    service a test starts, most of a small test's time. So the requests are served by an app of this process
    that routes exactly as `app` does (the same routers, middleware, exception handlers and OpenAPI hook, see
    `_routing_key`) and has served before, with `app`'s `state` and `dependency_overrides` lent to it for the
    test. What a test observes (database, broker, runtime, state, overrides) stays its own; only the routing,
    built from the same module-level routers, is reused. An app routed like no idle one (or while that one
    serves another app of the same test, e.g. two replicas) serves its own requests, and later tests'."""
    key = _routing_key(app)
    if key not in _idle_routers and len(_idle_routers) >= _MAX_ROUTINGS:
        key = None  # apps built with routes of their own each time (closures over their settings): no sharing
    idle = _idle_routers.setdefault(key, []) if key is not None else []
    router = idle.pop() if idle else app
    router.state = app.state
    router.dependency_overrides = app.dependency_overrides
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=router, raise_app_exceptions=False)
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                    yield client
            finally:
                await _stop_polling(app)
    finally:
        if router is not app:  # let go of this test's state; `app` keeps its own for the test to look at
            router.state = State()
            router.dependency_overrides = {}
        if key is not None:
            idle.append(router)


async def _stop_polling(app: FastAPI) -> None:
    """Ask the app's consumer to stop, as the lifespan's end does next, and on the in-process broker wake its
    poll: it would otherwise wait out its timeout (~100 ms on average, paid by every test that starts a service)
    before it sees the request. Nothing else changes: the consumer finishes what it holds and commits as it
    does when it stops, and the rest of the runtime stops in the lifespan."""
    runtime = getattr(app.state, "runtime", None)
    consumer = getattr(runtime, "consumer", None)
    if runtime is None or consumer is None or not memory.is_memory(runtime.settings.kafka_bootstrap):
        return
    await consumer.stop()
    memory.broker_for(runtime.settings.kafka_bootstrap).wake_group(consumer.name)


class _Same:
    """Compares equal to a _Same of the very same object (routers are not hashable)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


class _NotComparable(Exception):
    """A part of an app's routing that cannot be compared with another app's: the app shares no routing."""


def _routing_key(app: FastAPI) -> Hashable | None:
    """What decides how `app` answers a request besides its lifespan and state: its description, its routes
    (included routers by identity and inclusion; its own routes by path, methods and endpoint), the user
    middleware, the exception handlers and the OpenAPI hook. A function built per app (`create_service_app`'s
    `/readyz`, the problem handlers) compares by code and by what it captures, a reference to the app itself
    equal to another app's reference to itself. None (share nothing) if any part is not comparable."""

    def freeze(value: Any) -> Hashable:
        if value is app:
            return "<the app>"
        if isinstance(value, str | int | float | bool | bytes | type | None):
            return value
        if isinstance(value, FunctionType):
            cells = tuple(freeze(cell.cell_contents) for cell in (value.__closure__ or ()))
            return ("function", value.__code__, cells, freeze(value.__defaults__), freeze(value.__kwdefaults__))
        if isinstance(value, MethodType):
            return ("method", freeze(value.__self__), freeze(value.__func__))
        if isinstance(value, dict):
            return ("dict", tuple((freeze(k), freeze(v)) for k, v in value.items()))
        if isinstance(value, list | tuple):
            return (type(value).__name__, tuple(freeze(item) for item in value))
        if isinstance(value, set | frozenset):
            return ("set", frozenset(freeze(item) for item in value))
        if isinstance(value, params.Depends):
            return ("depends", freeze(value.dependency), value.use_cache, freeze(getattr(value, "scope", None)))
        if isinstance(value, DefaultPlaceholder):
            return ("default", freeze(value.value))
        try:  # anything else by its own equality (`dict[str, str]`, a model class) or, by default, its identity
            hash(value)
        except TypeError:
            raise _NotComparable(type(value).__name__) from None
        return cast(Hashable, value)

    def route(value: Any) -> Hashable:
        if hasattr(value, "original_router") and hasattr(value, "include_context"):  # an included APIRouter
            context = vars(value.include_context)
            inclusion = {
                k: v for k, v in context.items() if k not in ("dependency_overrides_provider", "included_router")
            }
            return ("included", _Same(value.original_router), freeze(inclusion))
        fields = ("path", "methods", "name", "endpoint", "include_in_schema", "status_code", "response_model")
        described = {name: getattr(value, name, None) for name in fields}
        described["dependencies"] = getattr(value, "dependencies", None)
        described["response_class"] = getattr(value, "response_class", None)
        return (type(value), freeze(described))

    try:
        key = (
            type(app),
            freeze([app.title, app.description, app.version, app.openapi_url, app.docs_url, app.root_path]),
            tuple(route(r) for r in app.router.routes),
            freeze([(m.cls, m.args, m.kwargs) for m in app.user_middleware]),
            freeze(app.exception_handlers),
            freeze(app.openapi),
        )
        hash(key)
    except (_NotComparable, TypeError):
        return None
    return key


async def all_published(app: FastAPI) -> None:
    """Wait until `app` has published everything it will for now: its deadline scheduler (if it runs) went
    through a whole round after this call, at its clock's time, and its relay's outbox is empty. Then a topic
    read to its end (`shared.testing.kafka.collect`) holds every record the app published, duplicates
    included: the signal a test of "exactly once" waits for instead of reading on for a while."""
    runtime = app.state.runtime
    scheduler = runtime.scheduler
    if scheduler is not None and not scheduler.stopped:
        target = scheduler.rounds_begun + 1  # a round begun after this call (the one the wake asks for) ended
        scheduler.wake()
        await eventually(lambda: asyncio.sleep(0, scheduler.rounds), until=lambda rounds: rounds >= target)
    await eventually(runtime.relay.backlog, until=lambda count: count == 0)


async def settled(app: FastAPI) -> None:
    """Wait until `app` has read everything now on the topics it follows (its group's lag 0) and published
    everything it will for now (`all_published`): what a test of "once" (no duplicate record, no second job)
    waits for before it reads a topic, rather than reading on for a while."""
    if app.state.runtime.consumer is not None or getattr(app.state, "consumer", None) is not None:
        await caught_up(app)
    await all_published(app)


def bearer(
    settings: ServiceSettings, *roles: str, sub: str | None = None, dealer_id: str | None = None
) -> dict[str, str]:
    token = mint_token(
        settings.auth_secret, subject=sub or (dealer_id or roles[0]), roles=list(roles), dealer_id=dealer_id
    )
    return {"Authorization": f"Bearer {token}"}


async def eventually(
    probe: Callable[[], Awaitable[T]], *, until: Callable[[T], bool], timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll `probe` until `until(result)` holds; fail with the last result after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result: T = await probe()
        if until(result):
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last result: {result!r}")
        await asyncio.sleep(interval)
