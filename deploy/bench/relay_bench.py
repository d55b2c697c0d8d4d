"""Relay part: OutboxRelay draining a pre-filled outbox, next to a raw aiokafka producer sending the same
records (same size, key and CloudEvents headers) with the same producer settings.

Part of `python -m deploy.bench`; on its own, `python -m deploy.bench.relay_bench [--before REV]` runs only this
part and, with `--before`, also drains the same outbox with the relay of that revision (its
`shared/messaging/relay.py`, loaded beside this checkout's) in the same rounds, alternately first."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, insert, select

from deploy.bench.kafka_util import end_offset_sum
from deploy.bench.payloads import received_event
from deploy.bench.procs import cpu_seconds
from deploy.bench.revisions import module_at
from deploy.bench.sysinfo import busy_cpu_seconds
from shared.clock import utcnow
from shared.contracts.topics import INTAKE
from shared.eventstore.database import Database
from shared.eventstore.store import _envelope
from shared.eventstore.tables import events, metadata, outbox
from shared.messaging.cloudevents import Headers, to_record
from shared.messaging.kafka import ensure_topics, reliable_producer
from shared.messaging.relay import OutboxRelay
from shared.settings import ServiceSettings

Record = tuple[str, bytes, bytes, Headers]
Log = Callable[[str], None]


@dataclass
class Drain:
    """One publisher's run: records sent, wall seconds, how many records the topic gained, and the CPU (in
    cores) of this process, of the broker and of everything else on the machine meanwhile."""

    records: int
    seconds: float
    offset_delta: int
    own_cores: float = 0.0
    broker_cores: float = 0.0
    other_cores: float = 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@dataclass
class RelayResults:
    """The fastest raw and relay rounds, and what the runs were made of."""

    events: int
    fill_seconds: float
    record_bytes: int
    raw: Drain
    relay: Drain
    outbox_left: int
    batch_size: int
    rounds: int = 1
    before: Drain | None = None  # the relay of `before_revision`, on the same records in the same rounds
    before_revision: str | None = None


def _event_row(recorded_at: datetime) -> dict[str, Any]:
    """A row as EventStore.append writes it for a new request's `service_request.received`."""
    data = received_event(f"SN-relay-{uuid.uuid4().hex[:12]}")
    command = str(uuid.uuid4())
    return {
        "event_id": str(uuid.uuid4()),
        "stream_id": data.request_id,
        "stream_type": "service_request",
        "version": 1,
        "type": data.event_type,
        "schema_version": data.version,
        "topic": data.topic,
        "data": data.model_dump_json(),
        "occurred_at": recorded_at,
        "recorded_at": recorded_at,
        "correlation_id": command,
        "causation_id": command,
        "traceparent": None,
        "actor": "user:bench-agent",
    }


async def fill(db: Database, count: int, chunk: int = 5000) -> None:
    """Append `count` events and make them due, `chunk` per transaction (before any timing starts)."""
    for start in range(0, count, chunk):
        now = utcnow()
        rows = [_event_row(now) for _ in range(min(chunk, count - start))]
        async with db.transaction() as conn:
            last = (await conn.execute(select(func.coalesce(func.max(events.c.position), 0)))).scalar_one()
            await conn.execute(insert(events), rows)
            await conn.execute(
                insert(outbox).from_select(["position"], select(events.c.position).where(events.c.position > last))
            )


async def stored_records(db: Database) -> list[Record]:
    """The records the relay will publish, built the relay's way, for the raw producer to send."""
    async with db.read() as conn:
        rows = (await conn.execute(select(events).order_by(events.c.position))).all()
    return [to_record(_envelope(row, "intake")) for row in rows]


async def send_raw(bootstrap: str, records: list[Record], client_id: str) -> float:
    """Send every record with send() and gather the futures; seconds from start() to the last ack."""
    started = time.perf_counter()
    producer = reliable_producer(bootstrap, client_id)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers) for topic, key, value, headers in records
        ]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


RelayClass = type[OutboxRelay]


def relay_of(revision: str) -> RelayClass:
    """`OutboxRelay` as `shared/messaging/relay.py` of `revision` has it (importing the rest from this checkout)."""
    module = module_at(revision, "shared/messaging/relay.py", "relay_before")
    relay_class: RelayClass = module.OutboxRelay
    return relay_class


async def drain_with_relay(
    db: Database, bootstrap: str, count: int, batch_size: int, relay_class: RelayClass = OutboxRelay
) -> float:
    """Run the relay's run() until it has published `count` events; seconds from start to the last delete."""
    relay = relay_class(db, lambda: reliable_producer(bootstrap, "bench-relay"), source="intake", batch_size=batch_size)
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    while relay.published < count and not task.done():
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - started
    await relay.stop()
    await task
    return elapsed


class CpuMeter:
    """CPU used by this process, the broker and the rest of the machine between start() and stop()."""

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid

    def start(self) -> None:
        self._marks = (time.monotonic(), time.process_time(), cpu_seconds(self.broker_pid), busy_cpu_seconds())

    def stop(self, drain: Drain) -> Drain:
        wall, own, broker, machine = self._marks
        wall = time.monotonic() - wall
        drain.own_cores = (time.process_time() - own) / wall
        drain.broker_cores = (cpu_seconds(self.broker_pid) - broker) / wall
        drain.other_cores = max(0.0, (busy_cpu_seconds() - machine) / wall - drain.own_cores - drain.broker_cores)
        return drain


async def _timed(
    meter: CpuMeter, bootstrap: str, label: str, count: int, publish: Callable[[], Awaitable[float]], log: Log
) -> Drain:
    """Run `publish()` (which returns its seconds) between two reads of the topic's end offsets."""
    before = await end_offset_sum(bootstrap, INTAKE)
    meter.start()
    drain = meter.stop(Drain(count, await publish(), 0))
    drain.offset_delta = await end_offset_sum(bootstrap, INTAKE) - before
    log(
        f"  {label:6} {drain.rate:8.0f} records/s ({drain.seconds:.2f}s; cores: {drain.own_cores:.2f} here, "
        f"{drain.broker_cores:.2f} broker, {drain.other_cores:.2f} other)"
    )
    return drain


async def _round(
    bootstrap: str,
    meter: CpuMeter,
    db: Database,
    count: int,
    batch_size: int,
    log: Log,
    *,
    raw_too: bool = True,
    relay_class: RelayClass = OutboxRelay,
    label: str = "relay",
) -> tuple[Drain | None, Drain, int, float, int]:
    """Fill `db`, send its records raw (when `raw_too`), then drain it with the relay; also (outbox left, fill s,
    value bytes)."""
    await db.create_all(metadata)
    started = time.perf_counter()
    await fill(db, count)
    fill_seconds = time.perf_counter() - started
    records = await stored_records(db)
    log(f"  filled {count} events in {fill_seconds:.1f}s")
    raw = None
    if raw_too:
        raw = await _timed(meter, bootstrap, "raw", count, lambda: send_raw(bootstrap, records, "bench-raw"), log)
    relay = await _timed(
        meter, bootstrap, label, count, lambda: drain_with_relay(db, bootstrap, count, batch_size, relay_class), log
    )
    async with db.read() as conn:
        left = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return raw, relay, left, fill_seconds, len(records[0][2])


async def _warm_up(bootstrap: str, workdir: Path, batch_size: int) -> None:
    """A small raw send and relay drain first: the broker's JIT, the producer's metadata, SQLAlchemy's caches."""
    db = Database(f"sqlite+aiosqlite:///{workdir / 'relay-warmup.db'}")
    try:
        await db.create_all(metadata)
        await fill(db, 2000)
        await send_raw(bootstrap, await stored_records(db), "bench-warmup")
        await drain_with_relay(db, bootstrap, 2000, batch_size)
    finally:
        await db.dispose()


def _fastest(drains: list[Drain]) -> Drain:
    return max(drains, key=lambda drain: drain.rate)


async def run_relay(
    bootstrap: str,
    broker_pid: int | None,
    workdir: Path,
    count: int,
    rounds: int = 2,
    log: Log = print,
    before: str | None = None,
) -> RelayResults:
    """Per round: fill a fresh SQLite outbox (default durable settings), then time raw and relay on the same
    records (and, with `before`, that revision's relay on an outbox filled the same way, first in every other
    round). The fastest round of each is kept: other work on the machine only ever slows a run down."""
    batch_size = ServiceSettings().relay_batch_size
    meter = CpuMeter(broker_pid)
    before_class = relay_of(before) if before else None
    await _warm_up(bootstrap, workdir, batch_size)
    raws, relays, befores, left, fill_seconds, size = [], [], [], 0, 0.0, 0

    async def now(number: int) -> None:
        nonlocal left, fill_seconds, size
        db = Database(f"sqlite+aiosqlite:///{workdir / f'relay{number}.db'}")
        try:
            raw, relay, round_left, fill_seconds, size = await _round(bootstrap, meter, db, count, batch_size, log)
        finally:
            await db.dispose()
        assert raw is not None
        raws.append(raw)
        relays.append(relay)
        left += round_left

    async def then(number: int) -> None:
        nonlocal left
        assert before_class is not None
        db = Database(f"sqlite+aiosqlite:///{workdir / f'relay-before{number}.db'}")
        try:
            _, relay, round_left, _, _ = await _round(
                bootstrap, meter, db, count, batch_size, log, raw_too=False, relay_class=before_class, label="before"
            )
        finally:
            await db.dispose()
        befores.append(relay)
        left += round_left

    for number in range(rounds):
        parts = [now] if before_class is None else [now, then] if number % 2 == 0 else [then, now]
        for part in parts:
            await part(number)
    return RelayResults(
        events=count,
        fill_seconds=fill_seconds,
        record_bytes=size,
        raw=_fastest(raws),
        relay=_fastest(relays),
        outbox_left=left,
        batch_size=batch_size,
        rounds=rounds,
        before=_fastest(befores) if befores else None,
        before_revision=before,
    )


async def pick_up_latency(
    bootstrap: str, workdir: Path, relay_class: RelayClass, rate: float, seconds: float, hold_ms: float, name: str
) -> list[float]:
    """Seconds from each event's commit to a consumer receiving it, while commands come at `rate` per second,
    each holding the SQLite writer for `hold_ms` in its transaction (as a command's statements do under group
    commit): the relay's own delete queues behind them."""
    db = Database(f"sqlite+aiosqlite:///{workdir / f'latency-{name}.db'}")
    await db.create_all(metadata)
    relay = relay_class(db, lambda: reliable_producer(bootstrap, "bench-relay"), source="intake")
    consumer = AIOKafkaConsumer(INTAKE, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest")
    await consumer.start()
    committed: dict[str, float] = {}
    fetched: dict[str, float] = {}
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)  # "latest" resolved before the first command
        relaying = asyncio.create_task(relay.run())

        async def command() -> None:
            row = _event_row(utcnow())
            async with db.transaction() as conn:
                await conn.execute(insert(events).values(row))
                await conn.execute(
                    insert(outbox).from_select(
                        ["position"], select(events.c.position).where(events.c.event_id == row["event_id"])
                    )
                )
                await asyncio.sleep(hold_ms / 1000)
            committed[row["event_id"]] = time.perf_counter()

        async def tail() -> None:
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    now = time.perf_counter()
                    for record in records:
                        ce_id: bytes = dict(record.headers or ())["ce_id"]
                        fetched[ce_id.decode()] = now

        tailing = asyncio.create_task(tail())
        commands, started = [], time.perf_counter()
        while time.perf_counter() - started < seconds:
            commands.append(asyncio.create_task(command()))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*commands)
        deadline = time.perf_counter() + 30
        while not committed.keys() <= fetched.keys() and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        tailing.cancel()
        await relay.stop()
        await relaying
    finally:
        await consumer.stop()
        await db.dispose()
    missing = len(committed.keys() - fetched.keys())
    if missing:
        print(f"  {missing} of {len(committed)} committed events did not reach the consumer within 30 s")
    return [fetched[event_id] - at for event_id, at in committed.items() if event_id in fetched]


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"

    def at(pct: int) -> float:
        return 1000 * ordered[max(0, (pct * len(ordered) + 99) // 100 - 1)]

    return f"p50 {at(50):6.1f}  p99 {at(99):7.1f}  max {1000 * ordered[-1]:7.1f} ms (n={len(ordered)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.relay_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per drain (default 50000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the fastest of each is kept (default 2)")
    parser.add_argument("--before", help="also drain with the relay of this git revision (e.g. main)")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="instead of draining: commit to consumer latency under a steady stream of commands (with --before, "
        "both relays alternately)",
    )
    parser.add_argument("--rate", type=float, default=200, help="--latency: commands per second (default 200)")
    parser.add_argument("--hold-ms", type=float, default=4, help="--latency: writer time per command (default 4)")
    parser.add_argument("--seconds", type=float, default=10, help="--latency: seconds per run (default 10)")
    args = parser.parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    from deploy.bench.__main__ import _broker, _run_async  # the full bench's broker and event loop
    from deploy.bench.sysinfo import machine

    info = machine()
    print(f"aiokafka C extensions: {'loaded' if info.aiokafka_c else 'NOT loaded'} ({info.aiokafka_c_detail})")
    with tempfile.TemporaryDirectory(prefix="servicetrail-relay-") as tree, ExitStack() as stack:
        bootstrap, broker_pid = _broker(stack)
        _run_async(ensure_topics(bootstrap, [INTAKE]))
        if args.latency:
            relays: list[tuple[str, RelayClass]] = [("now", OutboxRelay)]
            if args.before:
                relays.insert(0, (f"at {args.before}", relay_of(args.before)))
            print(f"commit → consumer, {args.rate:.0f} commands/s holding the writer {args.hold_ms} ms each:")
            for number in range(args.rounds):
                for run, (name, relay_class) in enumerate(relays if number % 2 == 0 else relays[::-1]):
                    latencies = _run_async(
                        pick_up_latency(
                            bootstrap,
                            Path(tree),
                            relay_class,
                            args.rate,
                            args.seconds,
                            args.hold_ms,
                            f"{number}-{run}",
                        )
                    )
                    print(f"  relay {name:16} {_percentiles(latencies)}", flush=True)
            return 0
        results = _run_async(run_relay(bootstrap, broker_pid, Path(tree), args.events, args.rounds, print, args.before))
    print(f"fastest of {results.rounds} rounds, {results.events} events each (outbox left: {results.outbox_left}):")
    drains = [("raw", results.raw), ("relay", results.relay)]
    if results.before is not None:
        drains.append((f"relay at {results.before_revision}", results.before))
    for name, drain in drains:
        print(f"  {name:20} {drain.rate:8.0f} records/s  {drain.rate / results.raw.rate:.3f} of raw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
