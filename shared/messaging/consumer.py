"""The idempotent consumer runner: one place where events from Kafka become effects in a service.

Per record: read the CloudEvent, look up the handler by `ce_type` (types the service does not react to are
skipped), validate the data against its contract, then claim the event id and run the handler in one
database transaction, so that an event seen twice has one effect. Offsets are committed after the effects
are durable. A record that can never be handled (not a CloudEvent, unknown version, bad data, a handler that
keeps failing while the database is fine) goes to `<topic>.dlq` with the reason in its headers, and the
partition keeps flowing."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import CommitFailedError
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import TextClause, bindparam, delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import rfc3339, utcnow
from shared.contracts.base import REGISTRY, Registry
from shared.contracts.topics import dlq_for
from shared.events import IncomingEvent
from shared.eventstore import lean
from shared.eventstore.database import Database
from shared.eventstore.sqlite_driver import OneTripConnection
from shared.eventstore.store import ConcurrencyError
from shared.eventstore.tables import UtcDateTime, processed_events
from shared.messaging.cloudevents import UnreadableEvent, from_record
from shared.observability.logging import correlation_id, correlation_scope, trace_id
from shared.observability.metrics import CONSUMED, CONSUMER_LAG
from shared.observability.tracing import current_traceparent, span, trace_id_of

log = logging.getLogger(__name__)

Handler = Callable[[IncomingEvent[Any], AsyncConnection], Awaitable[None]]

# Plain SQL on purpose: SQLAlchemy 2.0 cannot cache the compiled form of INSERT .. ON CONFLICT, and
# recompiling it per event cost a fifth of a consumer's CPU. Both SQLite and PostgreSQL take this form.
_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_id, processed_at) "
    "VALUES (:consumer, :event_id, :processed_at) ON CONFLICT DO NOTHING"
).bindparams(bindparam("processed_at", type_=UtcDateTime()))


_LEAN_CLAIM = lean.Prepared(_CLAIM)
_UNCLAIM = lean.Prepared(
    delete(processed_events).where(
        processed_events.c.consumer == bindparam("consumer"), processed_events.c.event_id == bindparam("event_id")
    )
)


# PostgreSQL takes at most 32,767 parameters per statement; a chunk (CONSUMER_TRANSACTION_SIZE events) may be
# set larger than what one statement can claim.
_CLAIMS_PER_STATEMENT = 1000


@lru_cache(maxsize=64)
def _claims(count: int) -> TextClause:
    """`count` claims in one statement (off the lean path: PostgreSQL); RETURNING names the new ones."""
    rows = ", ".join(f"(:consumer, :e{i}, :processed_at)" for i in range(count))
    return text(
        f"INSERT INTO processed_events (consumer, event_id, processed_at) VALUES {rows} "
        "ON CONFLICT DO NOTHING RETURNING event_id"
    ).bindparams(bindparam("processed_at", type_=UtcDateTime()))


@lru_cache(maxsize=64)
def _sqlite_claims(count: int) -> str:
    """`count` claims in one statement for the lean path: SQLite (3.35+) returns the rows it inserted, so the
    ids claimed now are those it names."""
    rows = ", ".join(["(?, ?, ?)"] * count)
    return (
        f"INSERT INTO processed_events (consumer, event_id, processed_at) VALUES {rows} "
        "ON CONFLICT DO NOTHING RETURNING event_id"
    )


def _claim_on_driver(consumer: str, event_ids: list[str], now: datetime, db: lean.Driver) -> set[str]:
    """The ids (distinct) claimed in statements of up to `_CLAIMS_PER_STATEMENT` rows: the time bound once, as
    the one-row `_CLAIM` binds it, and no statement per id."""
    compiled = _LEAN_CLAIM.compiled(db.dialect)
    process = compiled.processors[compiled.names.index("processed_at")]
    processed_at = process(now) if process is not None else now
    claimed: set[str] = set()
    for start in range(0, len(event_ids), _CLAIMS_PER_STATEMENT):
        ids = event_ids[start : start + _CLAIMS_PER_STATEMENT]
        parameters = [value for event_id in ids for value in (consumer, event_id, processed_at)]
        cursor = db.raw.execute(_sqlite_claims(len(ids)), parameters)
        try:
            claimed.update(event_id for (event_id,) in cursor.fetchall())
        finally:
            cursor.close()
    return claimed


@dataclass
class Chunk:
    """The chunk of a partition's records being applied in one transaction, as its handlers see it: the events
    about to be applied, in order (claimed, so not applied before), and `memo`, where a handler may keep what it
    read once for the whole chunk instead of once per event (dispatch's look-ups of a chunk's requests).

    What is in `memo` must stay true of the transaction: a handler that keeps something there updates it with
    its own writes, and the consumer empties it whenever an event's effect is undone (a rejected event, a lost
    race retried), so that a handler reads the database afresh after a rollback. Nothing else writes during a
    chunk on SQLite (the writer is the chunk's); on PostgreSQL a concurrent command may commit meanwhile, which
    a memo sees no later than the chunk's start (as a read at that moment would have)."""

    events: list[IncomingEvent[Any]]
    memo: dict[object, Any] = field(default_factory=dict)


_CURRENT_CHUNK: ContextVar[Chunk | None] = ContextVar("consumer_chunk", default=None)


def current_chunk() -> Chunk | None:
    """The chunk the running handler's event belongs to; None when the event is applied on its own (a retry
    record by record, or a handler called outside the consumer)."""
    return _CURRENT_CHUNK.get()


def _tracing_is_off() -> bool:
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


class _ChunkFailed(Exception):
    """A chunk could not be applied in one transaction; its records are retried one by one."""


class PermanentFailure(Exception):
    """A handler's verdict that the event can never be applied; it goes to the DLQ with this reason."""


class IdempotentConsumer:
    def __init__(
        self,
        *,
        db: Database,
        name: str,
        topics: list[str],
        handlers: Mapping[str, Handler],
        consumer_factory: Callable[[], AIOKafkaConsumer],
        producer_factory: Callable[[], AIOKafkaProducer],
        registry: Registry = REGISTRY,
        batch_size: int = 500,
        transaction_size: int = 100,
        handler_attempts: int = 5,
        service: str | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self.service = service or name  # whose spans these are (the group may be named otherwise)
        self.topics = topics
        self.handlers = dict(handlers)
        self.consumer_factory = consumer_factory
        self.producer_factory = producer_factory
        self.registry = registry
        self.batch_size = batch_size
        self.transaction_size = transaction_size
        self.handler_attempts = handler_attempts
        self._stopping = asyncio.Event()
        self._dlq_producer: AIOKafkaProducer | None = None
        self.counts: dict[str, int] = {"applied": 0, "duplicate": 0, "ignored": 0, "dlq": 0}

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = self.consumer_factory()
            try:
                await consumer.start()
                backoff = 0.5
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: start again, from the committed offsets.
                log.warning("consumer %s stopped (%s); restarting in %.1fs", self.name, exc, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                await _quietly(consumer.stop())
        if self._dlq_producer is not None:
            await _quietly(self._dlq_producer.stop())

    async def stop(self) -> None:
        self._stopping.set()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=self.batch_size)
            for partition, records in batches.items():
                handled = await self.handle_records(records)
                if handled:
                    try:
                        await consumer.commit({partition: records[handled - 1].offset + 1})
                    except CommitFailedError as exc:
                        # A rebalance took the partition; its new owner re-reads, and dedupe absorbs it.
                        log.info("commit after rebalance failed for %s: %s", partition, exc)
                    highwater = consumer.highwater(partition)
                    if highwater is not None:
                        CONSUMER_LAG.labels(self.name, partition.topic, str(partition.partition)).set(
                            max(highwater - records[handled - 1].offset - 1, 0)
                        )
                if handled < len(records):
                    return  # stopping

    async def handle_records(self, records: list[ConsumerRecord]) -> int:
        """Handle records of one partition in order, up to `transaction_size` per database transaction;
        return how many were handled (all of them unless the consumer is stopping)."""
        handled = 0
        while handled < len(records) and not self._stopping.is_set():
            chunk = records[handled : handled + self.transaction_size]
            try:
                await self._apply_chunk(chunk)
            except _ChunkFailed:
                # One record keeps failing: go record by record, so it is retried and, if need be,
                # sent to the DLQ on its own, without holding back the others.
                for record in chunk:
                    await self.handle_record(record)
            handled += len(chunk)
        return handled

    def _prepare(self, record: ConsumerRecord) -> tuple[IncomingEvent[Any] | None, Handler | None, str | None]:
        """(event, handler, reason it goes to the DLQ); no handler and no reason: a type we ignore."""
        try:
            envelope = from_record(record.topic, record.key, record.value, record.headers or ())
        except UnreadableEvent as exc:
            return None, None, f"unreadable: {exc}"
        handler = self.handlers.get(envelope.type)
        if handler is None:
            return None, None, None
        model = self.registry.get(envelope.type, envelope.schema_version)
        if model is None:
            return None, None, f"unknown schema {envelope.dataschema}"
        try:
            data = model.model_validate_json(envelope.data)
        except ValidationError as exc:
            return None, None, f"invalid data for {envelope.dataschema}: {_short(exc)}"
        return IncomingEvent(envelope, data), handler, None

    @contextmanager
    def _traced(
        self, record: ConsumerRecord, incoming: IncomingEvent[Any], tracing_off: bool | None = None
    ) -> Iterator[None]:
        envelope = incoming.envelope
        if tracing_off if tracing_off is not None else _tracing_is_off():
            # Tracing is off (no SDK provider installed): the span would be a no-op carrying the cause's own
            # context, so the event's traceparent is what the span would hand on, without a tenth of the
            # consumer's CPU spent on building it.
            with correlation_scope(envelope.correlationid, trace_id_of(envelope.traceparent)):
                yield
            return
        with span(
            self.service,
            f"{record.topic} process {envelope.type}",
            kind=SpanKind.CONSUMER,
            parent=envelope.traceparent,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.message.id": envelope.id,
                "messaging.consumer.group.name": self.name,
            },
        ):
            traceparent = current_traceparent(envelope.traceparent)
            with correlation_scope(envelope.correlationid, trace_id_of(traceparent)):
                yield

    async def _apply_chunk(self, chunk: list[ConsumerRecord]) -> None:
        """Apply a chunk in ONE transaction (one commit, one fsync): the event ids of the whole chunk claimed
        in one step, then each record's effect in a savepoint of its own, so that a record a handler rejects
        leaves the others' effects intact (and its claim is withdrawn with it: a rejected event is not marked
        processed, so a crash before its DLQ publication sends it to the DLQ after the restart). Handlers see
        the chunk (`current_chunk()`) to read what they need for all of its events at once. Any other failure
        rolls the chunk back and raises _ChunkFailed."""
        outcomes: Counter[tuple[str, str]] = Counter()
        dead: list[tuple[ConsumerRecord, str]] = []
        work: list[tuple[ConsumerRecord, IncomingEvent[Any], Handler]] = []
        for record in chunk:
            incoming, handler, reason = self._prepare(record)
            if reason is not None:
                dead.append((record, reason))
            elif incoming is None or handler is None:
                outcomes[record.topic, "ignored"] += 1
            else:
                work.append((record, incoming, handler))
        try:
            if work:
                async with self.db.transaction() as conn:
                    claimed = await self._claim_all(conn, [incoming.id for _, incoming, _ in work])
                    todo = []
                    for record, incoming, handler in work:
                        if incoming.id not in claimed:  # processed before, or earlier in this chunk
                            outcomes[record.topic, "duplicate"] += 1
                            continue
                        claimed.discard(incoming.id)
                        todo.append((record, incoming, handler))
                    scope = Chunk([incoming for _, incoming, _ in todo])
                    tracing_off = _tracing_is_off()
                    driver = lean.lean_driver(conn)
                    entered = _CURRENT_CHUNK.set(scope)
                    try:
                        for record, incoming, handler in todo:
                            if tracing_off:  # what `_traced` does then, without its two context managers
                                envelope = incoming.envelope
                                ids = correlation_id.set(envelope.correlationid)
                                trace = trace_id.set(trace_id_of(envelope.traceparent))
                                try:
                                    outcome = await self._apply_in_savepoint(conn, incoming, handler, scope, driver)
                                finally:
                                    trace_id.reset(trace)
                                    correlation_id.reset(ids)
                            else:
                                with self._traced(record, incoming, tracing_off):
                                    outcome = await self._apply_in_savepoint(conn, incoming, handler, scope, driver)
                            if outcome.startswith("rejected: "):
                                await self._unclaim(conn, incoming.id)
                                dead.append((record, outcome))
                            else:
                                outcomes[record.topic, outcome] += 1
                        await _flush_deferred_writes(conn)
                    finally:
                        _CURRENT_CHUNK.reset(entered)
        except _ChunkFailed:
            raise
        except Exception as exc:
            log.warning("a chunk of %d records failed (%s); retrying record by record", len(chunk), exc)
            raise _ChunkFailed from exc
        for (topic, outcome), count in outcomes.items():
            self._count_many(topic, outcome, count)
        for record, reason in sorted(dead, key=lambda dead_one: dead_one[0].offset):
            await self._to_dlq(record, reason)

    async def _apply_in_savepoint(
        self,
        conn: AsyncConnection,
        incoming: IncomingEvent[Any],
        handler: Handler,
        scope: Chunk,
        driver: OneTripConnection | None,
    ) -> str:
        """One claimed event's effect in a savepoint of the chunk's transaction (`driver`: the chunk's lean
        path, if it has one)."""
        for _ in range(self.handler_attempts):
            try:
                if driver is None:
                    async with lean.savepoint(conn, _EVENT_SAVEPOINT):
                        await handler(incoming, conn)
                else:
                    await _in_lean_savepoint(conn, driver, handler, incoming)
                return "applied"
            except ConcurrencyError:
                scope.memo.clear()  # the effect was undone: what handlers kept may no longer hold
                continue  # fold again and retry
            except PermanentFailure as exc:
                scope.memo.clear()
                return f"rejected: {exc}"
            except BaseException:
                scope.memo.clear()
                raise
        raise _ChunkFailed(f"{incoming.envelope.type} {incoming.id} kept losing races")

    async def handle_record(self, record: ConsumerRecord) -> str:
        """Handle one record in a transaction of its own; return the outcome (applied, duplicate, ignored,
        dlq)."""
        incoming, handler, reason = self._prepare(record)
        if reason is not None:
            return await self._to_dlq(record, reason)
        if incoming is None or handler is None:
            return self._count(record, "ignored")
        with self._traced(record, incoming):
            return await self._apply(record, incoming, handler)

    async def _apply(self, record: ConsumerRecord, incoming: IncomingEvent[Any], handler: Handler) -> str:
        """Apply one record in a transaction of its own. A handler that keeps failing while the database is
        up sends the record to the DLQ; while the database is away (or races keep being lost), the record is
        retried without end: never skipped, never counted twice."""
        delay = 0.1
        failures = 0
        while True:
            try:
                async with self.db.transaction() as conn:
                    if not await self._claim(conn, incoming.id):
                        return self._count(record, "duplicate")
                    await handler(incoming, conn)
                    await _flush_deferred_writes(conn)  # their failure is this record's, retried or sent to the DLQ
                return self._count(record, "applied")
            except ConcurrencyError:
                continue  # a command changed the aggregate meanwhile: fold again and retry at once
            except PermanentFailure as exc:
                return await self._to_dlq(record, f"rejected: {exc}")
            except Exception as exc:
                failures += 1
                if failures >= self.handler_attempts and await self._database_is_up():
                    log.exception("handler for %s failed %d times", incoming.envelope.type, failures)
                    return await self._to_dlq(record, f"handler failed: {type(exc).__name__}: {exc}")
                log.warning("handler for %s failed (%s); retrying", incoming.envelope.type, exc)
                if self._stopping.is_set():
                    raise  # stop without committing this record's offset: it is handled after the restart
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _claim(self, conn: AsyncConnection, event_id: str) -> bool:
        result = await conn.execute(_CLAIM, {"consumer": self.name, "event_id": event_id, "processed_at": utcnow()})
        return bool(result.rowcount)

    async def _claim_all(self, conn: AsyncConnection, event_ids: list[str]) -> set[str]:
        """Claim every id in one step; the ids not processed before (each once, however often it occurs)."""
        unique = list(dict.fromkeys(event_ids))
        now = utcnow()
        driver = lean.lean_driver(conn)
        if driver is not None:  # one trip: the same INSERT per id on the writer's connection (SQLite)
            return await lean.run(conn, driver, partial(_claim_on_driver, self.name, unique, now))
        claimed: set[str] = set()
        for start in range(0, len(unique), _CLAIMS_PER_STATEMENT):
            ids = unique[start : start + _CLAIMS_PER_STATEMENT]
            result = await conn.execute(
                _claims(len(ids)),
                {"consumer": self.name, "processed_at": now, **{f"e{i}": e for i, e in enumerate(ids)}},
            )
            claimed.update(row[0] for row in result)
        return claimed

    async def _unclaim(self, conn: AsyncConnection, event_id: str) -> None:
        await lean.write(conn, [(_UNCLAIM, {"consumer": self.name, "event_id": event_id})])

    async def _to_dlq(self, record: ConsumerRecord, reason: str) -> str:
        log.warning("sending %s[%d]@%d to the DLQ: %s", record.topic, record.partition, record.offset, reason)
        headers = list(record.headers or ()) + [
            ("dlq_reason", reason.encode()[:4000]),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_failed_at", rfc3339(utcnow()).encode()),
        ]
        while True:
            try:
                if self._dlq_producer is None:
                    producer = self.producer_factory()
                    await producer.start()
                    self._dlq_producer = producer
                await self._dlq_producer.send_and_wait(
                    dlq_for(record.topic), value=record.value, key=record.key, headers=headers
                )
                break
            except Exception as exc:  # the DLQ must hold it before the offset moves on
                log.warning("DLQ publish failed (%s); retrying", exc)
                if self._dlq_producer is not None:
                    await _quietly(self._dlq_producer.stop())
                    self._dlq_producer = None
                if self._stopping.is_set():
                    raise
                await self._sleep(1.0)
        return self._count(record, "dlq")

    def _count(self, record: ConsumerRecord, outcome: str) -> str:
        self._count_many(record.topic, outcome, 1)
        return outcome

    def _count_many(self, topic: str, outcome: str, count: int) -> None:
        self.counts[outcome] += count
        CONSUMED.labels(self.name, topic, outcome).inc(count)

    async def _database_is_up(self) -> bool:
        try:
            await self.db.ping()
            return True
        except Exception:
            return False

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass


_EVENT_SAVEPOINT = "consumer_event"
_BEGIN_EVENT, _END_EVENT = f"SAVEPOINT {_EVENT_SAVEPOINT}", f"RELEASE {_EVENT_SAVEPOINT}"


async def _in_lean_savepoint(
    conn: AsyncConnection, driver: OneTripConnection, handler: Handler, incoming: IncomingEvent[Any]
) -> None:
    """`lean.savepoint(conn, "consumer_event")` around the handler, spelled out for the consumer's hot loop (no
    async context manager, no look-up of the driver per event): the SAVEPOINT and RELEASE ride with the next
    trips; a handler that fails after writing has its savepoint rolled back."""
    driver.defer(_BEGIN_EVENT)
    try:
        await handler(incoming, conn)
    except BaseException:
        # Nothing of the handler ran yet: withdraw its savepoint and the writes it left for the next trip (a
        # rejected event's deferred writes must not land outside its savepoint). Else undo what it wrote.
        if not driver.withdraw_from(_BEGIN_EVENT):
            await lean.run(conn, driver, _undo_event)
        raise
    if not driver.take_back(_BEGIN_EVENT):
        driver.defer(_END_EVENT)


def _undo_event(db: lean.Driver) -> None:
    db.raw.execute(f"ROLLBACK TO {_EVENT_SAVEPOINT}")
    db.raw.execute(_END_EVENT)


async def _flush_deferred_writes(conn: AsyncConnection) -> None:
    """Run the writes handlers left for the next trip (`lean.write_later`) before the transaction ends, so
    that a failure among them fails this chunk (retried record by record) or record (retried, then the DLQ),
    never the group commit's RELEASE or COMMIT, which other writers of the process share."""
    driver = lean.lean_driver(conn)
    if driver is not None and driver.has_deferred_writes():
        await lean.run(conn, driver, _nothing)


def _nothing(db: lean.Driver) -> None:
    return None


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await asyncio.wait_for(awaitable, 10)
    except Exception:
        pass


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
