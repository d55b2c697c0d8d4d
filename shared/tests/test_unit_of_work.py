"""A command route's unit of work (shared.http.idempotency): its effects and its Idempotency-Key answer are
committed together or not at all, on SQLite and PostgreSQL."""

import asyncio
import json

import pytest
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Column, MetaData, String, Table, func, select

from shared.domain import Conflict
from shared.eventstore.database import Database
from shared.eventstore.tables import idempotency_keys, metadata
from shared.http.idempotency import IdempotencyStore, IdempotentCall
from shared.tests.conftest import database_with

effects_metadata = MetaData()
effects = Table("effects", effects_metadata, Column("id", String(40), primary_key=True))


@pytest.fixture
async def db(database_url):
    async with database_with(database_url, metadata, effects_metadata) as database:
        yield database


_stores: dict[int, IdempotencyStore] = {}


def call(db: Database, key: str | None, body: str = "{}") -> IdempotentCall:
    """A call as a route makes it, through the one store of its process (app.state.idempotency)."""
    store = _stores.setdefault(id(db), IdempotencyStore(db))
    if store.db is not db:
        store = _stores[id(db)] = IdempotencyStore(db)
    return IdempotentCall(store, "caller|POST /v1/things", key, body, "/v1/things")


async def rows(db: Database, table: Table) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


def writing(db: Database, effect_id: str, then=None):
    """A route's work: the application appends in a transaction of its own, then the route builds its answer."""

    async def produce() -> Response:
        async with db.transaction() as conn:
            await conn.execute(effects.insert().values(id=effect_id))
        if then is not None:
            return then()
        return JSONResponse({"id": effect_id}, status_code=201, headers={"Location": f"/v1/things/{effect_id}"})

    return produce


def fail():
    raise RuntimeError("the answer could not be built")


async def test_an_error_after_the_append_leaves_no_write_and_no_key_behind(db):
    with pytest.raises(RuntimeError):
        await call(db, "k1").run(writing(db, "e1", then=fail))
    with pytest.raises(ValueError):  # a header the server could not send: the connection would drop after commit
        await call(db, None).run(writing(db, "e2", then=lambda: Response(headers={"Location": "/v1/things/\x01"})))
    assert (await rows(db, effects), await rows(db, idempotency_keys)) == (0, 0)
    retried = await call(db, "k1").run(writing(db, "e1"))
    assert retried.status_code == 201 and await rows(db, effects) == 1


async def test_the_answer_is_committed_with_the_effects_and_replayed(db):
    first = await call(db, "k2").run(writing(db, "e3"))
    async with db.read() as conn:
        stored = (await conn.execute(select(idempotency_keys))).one()
    assert (stored.state, stored.status_code, json.loads(stored.body)) == ("done", 201, {"id": "e3"})
    replay = await call(db, "k2").run(writing(db, "never"))
    assert (replay.status_code, replay.body, replay.headers["idempotent-replayed"]) == (201, first.body, "true")
    assert replay.headers["location"] == "/v1/things/e3"
    assert await rows(db, effects) == 1


async def test_a_refusal_is_replayed_and_a_server_error_is_forgotten(db):
    async def refuse() -> Response:
        async with db.transaction() as conn:
            await conn.execute(effects.insert().values(id="half-done"))
        raise Conflict("already there", existing_id="x")

    refused = await call(db, "k3").run(refuse)
    assert refused.status_code == 409 and await rows(db, effects) == 0
    assert (await call(db, "k3").run(writing(db, "e4"))).body == refused.body
    broken = await call(db, "k4").run(writing(db, "e5", then=lambda: JSONResponse({}, status_code=503)))
    assert broken.status_code == 503 and await rows(db, effects) == 0
    assert (await call(db, "k4").run(writing(db, "e5"))).status_code == 201


async def test_a_second_call_while_the_first_runs_is_a_409_and_then_replays_the_first_answer(db):
    from shared.http.problems import Problem

    release = asyncio.Event()

    def slow_answer():
        return JSONResponse({"id": "slow"}, status_code=201)

    async def slow() -> Response:
        await release.wait()
        return await writing(db, "slow", then=slow_answer)()

    first = asyncio.create_task(call(db, "k5").run(slow))
    await asyncio.sleep(0)
    with pytest.raises(Problem) as running:
        await call(db, "k5").run(writing(db, "other"))
    assert running.value.status == 409 and running.value.slug == "idempotency-key-in-use"
    release.set()
    assert (await first).status_code == 201
    replay = await call(db, "k5").run(writing(db, "other"))
    assert (replay.status_code, json.loads(replay.body)) == (201, {"id": "slow"})
    assert await rows(db, effects) == 1


async def test_a_call_of_another_replica_holding_the_key_is_a_409(db):
    """Two stores on one database play two replicas (PostgreSQL: the advisory lock; SQLite: the write lock)."""
    from shared.http.problems import Problem

    release, started = asyncio.Event(), asyncio.Event()

    async def slow() -> Response:
        started.set()
        await release.wait()
        return await writing(db, "r1")()

    other_db = Database(str(db.url))
    try:
        first = asyncio.create_task(call(db, "k6").run(slow))
        await started.wait()
        second = asyncio.create_task(call(other_db, "k6").run(writing(other_db, "r2")))
        if db.is_sqlite:  # the second replica waits for the write lock, then replays
            await asyncio.sleep(0.2)
            release.set()
            assert json.loads((await second).body) == json.loads((await first).body) == {"id": "r1"}
        else:
            with pytest.raises(Problem) as running:
                await second
            assert running.value.status == 409
            release.set()
            await first
        assert await rows(db, effects) == 1
    finally:
        await other_db.dispose()


async def test_a_task_started_inside_a_unit_of_work_has_a_transaction_of_its_own(db):
    if not db.is_sqlite:
        pytest.skip("the point is SQLite's single writer: joining would share one connection between tasks")

    async def background_effect() -> None:
        async with db.transaction() as conn:  # waits for the unit of work instead of riding on its connection
            await conn.execute(effects.insert().values(id="background"))

    started = []

    async def produce() -> Response:
        started.append(asyncio.create_task(background_effect()))
        async with db.transaction() as conn:
            await conn.execute(effects.insert().values(id="foreground"))
        raise RuntimeError("the command fails after starting the task")

    with pytest.raises(RuntimeError):
        await call(db, None).run(produce)
    await started[0]
    assert await rows(db, effects) == 1
    async with db.read() as conn:
        assert (await conn.execute(select(effects.c.id))).scalars().all() == ["background"]
