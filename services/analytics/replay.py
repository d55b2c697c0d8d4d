"""Rebuild: replay the four topics from their beginning into a fresh generation of tables, then switch the
views to it in one transaction. The views keep answering from the old generation meanwhile, and the live
consumer keeps running: while a rebuild is under way it also stores each event it handles in the new
generation, so that nothing published after the replay's end offsets is missed."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pydantic import ValidationError

from services.analytics.facts import fold_all
from services.analytics.metrics import to_micros
from services.analytics.reactions import owner_of, refold
from services.analytics.records import CONSUMES, HANDLED_TYPES, AnalyticsEvent, analytics_event
from services.analytics.store import (
    create_generation,
    create_lookup_indexes,
    drop_generation,
    drop_lookup_indexes,
    existing_generations,
    insert_events,
    last_position,
    load_events,
    read_state,
    save_all,
    set_state,
)
from services.analytics.tables import generation
from shared.clock import utcnow
from shared.contracts.base import REGISTRY, Registry
from shared.eventstore.database import Database
from shared.messaging.cloudevents import UnreadableEvent, from_record

log = logging.getLogger(__name__)

STALE_AFTER_MICROS = 300_000_000  # a rebuild that has not reported for five minutes has died
IDLE_LIMIT_SECONDS = 120.0  # no record for this long while partitions are still short of their end: give up


class RebuildRunning(Exception):
    """Another rebuild is filling a generation right now."""


class RebuildSuperseded(Exception):
    """This rebuild's claim was taken over (it stalled for longer than the stale limit)."""


@dataclass(frozen=True)
class RebuildReport:
    generation: int
    records_read: int
    events_stored: int
    requests: int
    revisits: int
    late_requests: int
    seconds: float
    read_seconds: float
    fold_seconds: float

    @property
    def records_per_second(self) -> float:
        return self.records_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "records_per_second": round(self.records_per_second, 1)}


def decode(record: ConsumerRecord, registry: Registry = REGISTRY) -> AnalyticsEvent | None:
    """The stored form of a record, or None for one the live consumer would not apply either (a type analytics
    does not use, not a CloudEvent, an unknown schema version, invalid data: those went to the DLQ)."""
    event_type = next((v for k, v in record.headers or () if k == "ce_type"), b"").decode("utf-8", "replace")
    if event_type not in HANDLED_TYPES:
        return None
    try:
        envelope = from_record(record.topic, record.key, record.value, record.headers)
    except UnreadableEvent:
        return None
    model = registry.get(envelope.type, envelope.schema_version)
    if model is None:
        return None
    try:
        return analytics_event(envelope, model.model_validate_json(envelope.data))
    except ValidationError:
        return None


async def _claim(db: Database, owner: str) -> int:
    """Reserve the next generation for this rebuild; drop superseded and abandoned ones."""
    now = to_micros(utcnow())
    async with db.transaction() as conn:
        state = await read_state(conn, lock="update")
        if (state.building is not None and state.rebuild_heartbeat is not None
                and now - state.rebuild_heartbeat < STALE_AFTER_MICROS):
            raise RebuildRunning(f"generation {state.building} is being rebuilt by {state.rebuild_owner}")
        existing = await existing_generations(conn)
        for number in existing:
            if number != state.active:
                await drop_generation(conn, number)
        number = max([state.active, *existing]) + 1
        await drop_lookup_indexes(conn, await create_generation(conn, number))
        await set_state(conn, building_generation=number, rebuild_owner=owner, rebuild_heartbeat=now)
    return number


async def _still_mine(conn, number: int, owner: str) -> None:
    state = await read_state(conn, lock="update")
    if state.building != number or state.rebuild_owner != owner:
        raise RebuildSuperseded(f"rebuild of generation {number} was taken over")
    await set_state(conn, rebuild_heartbeat=to_micros(utcnow()))


@dataclass
class _Replayed:
    records: int = 0
    events: list[AnalyticsEvent] = field(default_factory=list)
    # Positions (after, until] the replay's own inserts took: the rest was stored by the live consumer meanwhile.
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def took(self, after: int, until: int) -> None:
        if self.ranges and self.ranges[-1][1] == after:
            self.ranges[-1] = (self.ranges[-1][0], until)
        else:
            self.ranges.append((after, until))


async def _replay_topics(db: Database, bootstrap: str, number: int, owner: str, registry: Registry,
                         batch_size: int) -> _Replayed:
    """Read every partition of the topics from its beginning to its end offset at the start; store the events
    analytics uses, and keep them for the fold."""
    # Subscribed without a group: the consumer waits for the topics' metadata and takes every partition.
    consumer = AIOKafkaConsumer(*CONSUMES, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed",
                                client_id=f"analytics-rebuild-{owner[:8]}")
    await consumer.start()
    replayed = _Replayed()
    tables = generation(number)

    async def store(events: list[AnalyticsEvent]) -> None:
        async with db.transaction() as conn:
            await _still_mine(conn, number, owner)
            if events:
                after = await last_position(conn, tables)
                await insert_events(conn, tables, events)
                replayed.took(after, await last_position(conn, tables))
        replayed.events += events

    storing: asyncio.Task | None = None  # one batch is stored while the next one is fetched and decoded
    try:
        partitions = sorted(consumer.assignment())
        if not partitions:
            raise RuntimeError(f"no partitions of {', '.join(CONSUMES)} found on {bootstrap}")
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:  # retention removed everything
                remaining.discard(tp)
        last_progress = time.monotonic()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
            if batches:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > IDLE_LIMIT_SECONDS:
                raise RuntimeError(f"no records from {sorted(map(str, remaining))} for {IDLE_LIMIT_SECONDS:.0f}s")
            events = []
            for tp, records in batches.items():
                for n, record in enumerate(records):
                    if record.offset < end[tp]:
                        replayed.records += 1
                        event = decode(record, registry)
                        if event is not None:
                            events.append(event)
                    if n % 256 == 255:
                        await asyncio.sleep(0)  # lets the previous batch's insert go on in the database thread
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if storing is not None:
                await storing
            storing = asyncio.create_task(store(events))
        if storing is not None:
            await storing
    finally:
        if storing is not None and not storing.done():
            storing.cancel()
            await asyncio.gather(storing, return_exceptions=True)
        await consumer.stop()
    return replayed


Progress = Callable[[str, str], Awaitable[None] | None]


async def rebuild(db: Database, bootstrap: str, *, registry: Registry = REGISTRY, batch_size: int = 5000,
                  on_progress: Progress | None = None) -> RebuildReport:
    """Replay the topics into a new generation and make it the active one; return what it took.

    `on_progress(stage, message)` hears of each stage: claimed, replayed, switched."""

    async def say(stage: str, message: str) -> None:
        log.info("rebuild: %s", message)
        if on_progress is not None:
            outcome = on_progress(stage, message)
            if inspect.isawaitable(outcome):
                await outcome

    owner = str(uuid.uuid4())
    started = time.perf_counter()
    number = await _claim(db, owner)
    try:
        await say("claimed", f"replaying {', '.join(CONSUMES)} into generation {number}")
        replayed = await _replay_topics(db, bootstrap, number, owner, registry, batch_size)
        read, stored = replayed.records, len(replayed.events)
        read_done = time.perf_counter()
        await say("replayed", f"read {read} records ({stored} events analytics uses); folding")
        tables = generation(number)
        async with db.transaction() as conn:
            await create_lookup_indexes(conn, tables)
        async with db.read() as conn:
            folded_until = await last_position(conn, tables)
            stored_live = await load_events(conn, tables, until_position=folded_until, except_ranges=replayed.ranges)
        requests, revisits = fold_all(replayed.events + stored_live)
        async with db.transaction() as conn:
            await _still_mine(conn, number, owner)
            await save_all(conn, tables, requests, revisits)
        # The switch: fold again what the live consumer stored meanwhile, then point the views at the new tables.
        async with db.transaction() as conn:
            await _still_mine(conn, number, owner)
            late = await load_events(conn, tables, after_position=folded_until)
            touched = {await owner_of(conn, tables, event) for event in late} - {None}
            for request_id in touched:
                await refold(conn, tables, request_id)
            previous = (await read_state(conn)).active
            await set_state(conn, active_generation=number, building_generation=None, rebuild_owner=None,
                            rebuild_heartbeat=None)
        finished = time.perf_counter()
        await say("switched", f"generation {number} is active (was {previous})")
        return RebuildReport(number, read, stored, len(requests), len(revisits), len(touched), finished - started,
                             read_done - started, finished - read_done)
    except BaseException:
        async with db.transaction() as conn:
            state = await read_state(conn, lock="update")
            if state.building == number and state.rebuild_owner == owner:
                await set_state(conn, building_generation=None, rebuild_owner=None, rebuild_heartbeat=None)
                await drop_generation(conn, number)
        raise
