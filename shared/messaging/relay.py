"""The outbox relay: publishes due events to Kafka in order, then marks them published.

At-least-once: a crash between Kafka's acknowledgement and the delete publishes a batch again with the same
`ce_id`s, which idempotent consumers drop. Several replicas may run: a lease in the database lets one
publish at a time (so per-stream order holds), and another takes over when its lease runs out.

Through a broker stall (SIGSTOP, a slow or restarting leader) the relay keeps its one idempotent producer and
the batch it handed to it: it waits for those very sends again rather than sending the rows anew, since a
second send of a row is a second record (the producer's idempotence only dedupes its own retries of a batch,
which it keeps making until the broker answers: with idempotence on, aiokafka never expires a batch). The
producer is replaced only when a send has failed for good (see `_in_flight_failed`).

Per event the relay copies as little as it can: the due rows come as the driver's tuples, the CloudEvents headers
are encoded straight from their columns, and the records are appended to one producer batch per partition (the
partition `send()` would pick) that goes over with `send_batch`, one future per batch rather than per record."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.clock import rfc3339, utcnow
from shared.eventstore.database import Database
from shared.eventstore.store import subject_of
from shared.eventstore.tables import leases, outbox
from shared.messaging.cloudevents import Headers, binary_headers
from shared.messaging.partitioning import default_partition
from shared.observability.metrics import EVENTS_PUBLISHED, RELAY_BACKLOG, RELAY_ERRORS, RELAY_PUBLISHED
from shared.observability.tracing import current_traceparent, span

log = logging.getLogger(__name__)

ProducerFactory = Callable[[], AIOKafkaProducer]


class Lease:
    """A named lease in the database; `acquire` extends it when held, takes it when expired."""

    def __init__(self, db: Database, name: str, owner: str, seconds: float) -> None:
        self.db, self.name, self.owner, self.seconds = db, name, owner, seconds
        self._held_until: datetime | None = None

    async def hold(self) -> bool:
        """True while this owner holds the lease; renews it when half of it has run out."""
        if self._held_until is not None and utcnow() < self._held_until - timedelta(seconds=self.seconds / 2):
            return True
        self._held_until = None
        now = utcnow()
        if await self.acquire(now):
            self._held_until = now + timedelta(seconds=self.seconds)
            return True
        return False

    async def acquire(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        expires = now + timedelta(seconds=self.seconds)
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(leases)
                .where(leases.c.name == self.name)
                .where((leases.c.owner == self.owner) | (leases.c.expires_at < now))
                .values(owner=self.owner, expires_at=expires)
            )
            if result.rowcount:
                return True
            dialect = postgresql if not self.db.is_sqlite else sqlite
            inserted = await conn.execute(
                dialect.insert(leases)
                .values(name=self.name, owner=self.owner, expires_at=expires)
                .on_conflict_do_nothing()
            )
            return bool(inserted.rowcount)

    async def release(self) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(delete(leases).where(leases.c.name == self.name, leases.c.owner == self.owner))
        self._held_until = None


async def _all_acknowledged(futures: list[asyncio.Future[Any]]) -> None:
    """Await the futures in order: most are done by the time we get to them, and awaiting a done future costs
    nothing, whereas gather() schedules a callback for each (a few µs per event); the first failure raises."""
    for future in futures:
        await future


def _tracing_on() -> bool:
    """Whether a tracer provider records spans. Without one (no OTLP endpoint), a producer span would only copy the
    event's own traceparent into the header, for some 25-35 µs per event: more than the Kafka send itself."""
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


# The due events with the columns a record needs, as the driver returns them: plain tuples, no ORM rows and no
# result processing (on SQLite the times stay the stored UTC text, which becomes the header as it is).
_DUE = text(
    "SELECT e.position, e.event_id, e.stream_id, e.stream_type, e.version, e.type, e.schema_version, e.topic,"
    " e.data, e.occurred_at, e.recorded_at, e.correlation_id, e.causation_id, e.traceparent, e.actor"
    " FROM outbox o JOIN events e ON e.position = o.position"
    " WHERE o.position > :after ORDER BY o.position LIMIT :limit"
)
_POSITION, _TYPE = 0, 5

DueRow = Sequence[Any]  # one row of _DUE, as the driver returns it (a tuple-like Row)

# aiokafka's default max_request_size: a record above it is refused by send(), so the relay refuses it too.
_DEFAULT_MAX_REQUEST_SIZE = 1048576
_HEADROOM = 4096


def _rfc3339_stored(value: str | datetime) -> str:
    """A stored time in RFC 3339, as `rfc3339` formats it. SQLite keeps a UTC time as text
    'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's storage format), re-spelled here without parsing it;
    PostgreSQL's driver hands back an aware datetime."""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            return f"{value[:10]}T{value[11:19] if value.endswith('.000000') else value[11:]}Z"
        return rfc3339(datetime.fromisoformat(value))
    return rfc3339(value)


@dataclass
class _Batch:
    """One producer batch for one partition, and the outbox rows in it, in position order."""

    builder: BatchBuilder
    rows: list[DueRow] = field(default_factory=list)


@dataclass
class _InFlight:
    """Rows handed to the producer, and the task awaiting Kafka's acknowledgement of all of them. `read_until`
    is the last position read for this batch, `complete` whether every row read was handed over."""

    rows: list[DueRow]
    acknowledged: asyncio.Task[None]
    read_until: int = 0
    complete: bool = False


@dataclass
class _Marking:
    """Acknowledged rows whose delete from the outbox is committing, and the task doing it. Until it is done,
    reads skip these positions, so the next batch is read and handed over without waiting for that commit."""

    positions: frozenset[int]
    task: asyncio.Task[None]

    @property
    def last(self) -> int:
        return max(self.positions)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        producer_factory: ProducerFactory,
        *,
        source: str,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        lease_seconds: float = 10.0,
        publish_timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.producer_factory = producer_factory
        self.source = source
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.publish_timeout = publish_timeout
        self.lease = Lease(db, f"relay:{source}", f"{source}-{uuid.uuid4()}", lease_seconds)
        self._producer: AIOKafkaProducer | None = None
        self._in_flight: _InFlight | None = None
        self._prefetched: list[DueRow] | None = None
        self._marking: _Marking | None = None
        self.failures = 0  # rounds that failed (Kafka or the database away), for tests and logs
        self._stopping = asyncio.Event()
        self.published = 0

    async def run(self) -> None:
        backoff = 0.2
        try:
            while not self._stopping.is_set():
                try:
                    if not await self.lease.hold():
                        await self._sleep(self.lease.seconds / 3)
                        continue
                    # Cleared before reading, so that a commit during the batch wakes the next round.
                    self.db.committed.clear()
                    sent = await self.publish_due()
                    backoff = 0.2
                    if sent < self.batch_size and self._in_flight is None:
                        await self._wait_for_work()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Kafka or the database is away: keep going, catch up later.
                    self.failures += 1
                    RELAY_ERRORS.labels(self.source).inc()
                    log.warning("relay could not publish, retrying in %.1fs: %s", backoff, exc)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if self._in_flight is not None:  # what Kafka has not acknowledged stays due; a later run sends it
                self._in_flight.acknowledged.cancel()
                await asyncio.gather(self._in_flight.acknowledged, return_exceptions=True)
                self._in_flight = None
            try:  # an acknowledged batch is marked before stopping, or stays due (and goes out again)
                await asyncio.wait_for(self._marked(), self.publish_timeout)
            except Exception as exc:
                log.warning("relay stopped before an acknowledged batch was marked published: %s", exc)
            await self._reset_producer()
            try:
                await self.lease.release()
            except Exception:  # the lease runs out by itself
                pass

    async def _due(self, after: int = 0) -> list[DueRow]:
        """Up to a batch of due events after `after`, in position order, as tuples (see `_DUE`), without the
        acknowledged ones whose delete is still committing (see `_Marking`)."""
        marking = self._marking
        # A read after the last batch (the one read ahead) cannot meet rows being deleted: no skipping then.
        skip = marking.positions if marking is not None and marking.last > after else frozenset()
        async with self.db.read() as conn:
            rows: Sequence[DueRow] = (
                await conn.execute(_DUE, {"after": after, "limit": self.batch_size + len(skip)})
            ).all()
        if not skip:
            return list(rows)
        return [row for row in rows if row[_POSITION] not in skip][: self.batch_size]

    async def _marked(self) -> None:
        """Wait for the delete of the last acknowledged batch; its failure raises here (its rows stay due)."""
        marking, self._marking = self._marking, None
        if marking is not None:
            await marking.task

    async def _mark_published(self, rows: list[DueRow]) -> None:
        """Delete acknowledged rows from the outbox, then count them as published."""
        async with self.db.transaction() as conn:
            await conn.execute(delete(outbox).where(outbox.c.position.in_([row[_POSITION] for row in rows])))
        self.published += len(rows)
        RELAY_PUBLISHED.labels(self.source).inc(len(rows))
        for event_type, count in Counter(row[_TYPE] for row in rows).items():
            EVENTS_PUBLISHED.labels(self.source, event_type).inc(count)

    async def publish_due(self) -> int:
        """Wait for Kafka's acknowledgement of the batch in flight (handing one over first when none is), mark its
        rows published (the delete commits in the background, see `_Marking`), and hand the next batch to the
        producer meanwhile; return how many events were acknowledged. A batch handed over in an earlier round is
        waited for, never sent again.

        Nothing is handed over before the batch ahead of it is acknowledged, so a failure can never put a later
        event ahead of an earlier one. While Kafka acknowledges, the next rows are read: only rows after this
        batch; a row with a lower position that commits late is left for a later round, which reads from the
        start (skipping the rows being deleted). If a delete fails, its rows stay due and go out again later
        (after what was handed over meanwhile: they were acknowledged first, and consumers drop the copies by
        `ce_id`), as after a crash at that point."""
        if self._in_flight is None:
            if self._marking is not None and self._marking.task.done():
                await self._marked()  # raises if that delete failed: its rows are due again
            prefetched, self._prefetched = self._prefetched, None
            rows = prefetched or await self._due()
            if not rows:
                RELAY_BACKLOG.labels(self.source).set(0)
                return 0
            await self._hand_to_producer(rows)
        in_flight = self._in_flight
        assert in_flight is not None, "_hand_to_producer hands over at least the first row, or raises"
        next_batch = (
            asyncio.create_task(self._due(after=in_flight.read_until))
            if in_flight.complete and len(in_flight.rows) == self.batch_size and self._prefetched is None
            else None
        )
        try:
            try:
                # shield: a timeout stops our wait, not the acknowledgements (the producer keeps retrying).
                await asyncio.wait_for(asyncio.shield(in_flight.acknowledged), self.publish_timeout)
            except Exception:
                if in_flight.acknowledged.done():
                    await self._in_flight_failed()
                raise
            self._in_flight = None
            # One delete at a time: the previous one has had this batch's whole acknowledgement to commit.
            await self._marked()
            positions = frozenset(row[_POSITION] for row in in_flight.rows)
            self._marking = _Marking(positions, asyncio.create_task(self._mark_published(in_flight.rows)))
            if next_batch is not None:
                self._prefetched, next_batch = await next_batch, None
            # The wait for the acknowledgement may have outlasted the lease: hand over only while holding it
            # (rows read before losing it are dropped: another replica may publish them meanwhile).
            ready, self._prefetched = self._prefetched, None
            if ready and await self.lease.hold():
                await self._hand_to_producer(ready)
        except BaseException:
            if next_batch is not None:
                next_batch.cancel()
                await asyncio.gather(next_batch, return_exceptions=True)
            raise
        return len(in_flight.rows)

    def _record(self, row: DueRow, source: bytes, tracing: bool) -> tuple[str, bytes, bytes, Headers]:
        """(topic, key, value, CloudEvents headers) of an outbox row, straight from its columns."""
        (
            _,
            event_id,
            stream_id,
            stream_type,
            version,
            event_type,
            schema_version,
            topic,
            data,
            occurred_at,
            recorded_at,
            correlation_id,
            causation_id,
            traceparent,
            actor,
        ) = row
        subject = subject_of(self.source, stream_type, stream_id)
        if tracing:
            # A producer span per event, child of the command's trace; its context travels in the header.
            with span(
                self.source,
                f"{topic} publish",
                kind=SpanKind.PRODUCER,
                parent=traceparent,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "messaging.message.id": event_id,
                    "cloudevents.event_type": event_type,
                },
            ):
                traceparent = current_traceparent(traceparent)
        headers = binary_headers(
            id=event_id,
            source=source,
            type=event_type,
            subject=subject,
            time=_rfc3339_stored(occurred_at),
            dataschema=f"{event_type}/{schema_version}",
            sequence=version,
            recordedat=_rfc3339_stored(recorded_at),
            correlationid=correlation_id,
            causationid=causation_id,
            traceparent=traceparent,
            actor=actor,
        )
        return topic, subject.encode(), data.encode(), headers

    async def _hand_to_producer(self, rows: list[DueRow]) -> None:
        """Put the rows in per-partition batches (the partition `send()` would choose, so one aggregate's events
        stay on one partition, in order) of the producer's batch size, and hand them over with `send_batch`:
        one future per batch instead of one per record. Whatever batches the producer took are in flight, even
        when something raised midway; the rest stays due and goes in a later batch, after these are
        acknowledged. Within a partition batches are handed over in order, so per key what is in flight is
        always a prefix of that key's due events."""
        producer = await self._ensure_producer()
        tracing = _tracing_on()
        source = self.source.encode()
        max_record = getattr(producer, "_max_request_size", _DEFAULT_MAX_REQUEST_SIZE)
        partitions: dict[str, list[int]] = {}
        open_batches: dict[tuple[str, int], _Batch] = {}
        handed: list[tuple[_Batch, asyncio.Future[Any]]] = []
        try:
            too_large = None
            for row in rows:
                topic, key, value, headers = self._record(row, source, tracing)
                # send() refuses a record above max_request_size; so does the relay. The exact estimate costs
                # about 1 µs, so only for a record that could come near the limit: headers (columns of at most
                # 120 characters, an actor of a token's sub and dealer id: some 1.2 kB at worst) and the batch's
                # own overhead stay below _HEADROOM bytes.
                if len(value) + len(key) + _HEADROOM > max_record:
                    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
                    if size > max_record:
                        too_large = MessageSizeTooLargeError(
                            f"event at position {row[_POSITION]} is {size} bytes "
                            f"as a record, more than the producer's {max_record}"
                        )
                        break  # what was put in batches before it still goes out
                topic_partitions = partitions.get(topic)
                if topic_partitions is None:
                    topic_partitions = partitions[topic] = sorted(await producer.partitions_for(topic))
                where = (topic, default_partition(key, topic_partitions))
                batch = open_batches.get(where)
                if (
                    batch is not None
                    and batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is not None
                ):
                    batch.rows.append(row)
                    continue
                if batch is not None:  # full: over to the producer, and on in a new one
                    del open_batches[where]
                    handed.append((batch, await self._send_batch(producer, batch, where)))
                batch = open_batches[where] = _Batch(producer.create_batch(), [row])
                batch.builder.append(timestamp=None, key=key, value=value, headers=headers)
            for where, batch in open_batches.items():
                handed.append((batch, await self._send_batch(producer, batch, where)))
            if too_large is not None:
                raise too_large
        finally:
            if handed:
                in_flight_rows = [row for batch, _ in handed for row in batch.rows]
                self._in_flight = _InFlight(
                    in_flight_rows,
                    asyncio.ensure_future(_all_acknowledged([f for _, f in handed])),
                    read_until=rows[-1][_POSITION],
                    complete=len(in_flight_rows) == len(rows),
                )

    @staticmethod
    async def _send_batch(producer: AIOKafkaProducer, batch: _Batch, where: tuple[str, int]) -> asyncio.Future[Any]:
        """Hand a batch over, closed: the producer's linger is for records that `send()` adds one by one, and
        nothing is added to this batch any more, so it goes to the broker at once."""
        batch.builder.close()
        delivered: asyncio.Future[Any] = await producer.send_batch(batch.builder, where[0], partition=where[1])
        return delivered

    async def _in_flight_failed(self) -> None:
        """A send failed for good (the producer gave up: fenced, out-of-order sequence, unknown producer id,
        a record too large, or it was stopped). Whether Kafka stored some of the batch cannot be known, so the
        rows stay due and are sent again by a fresh producer: a row may then appear twice on its topic, with
        the same `ce_id`, which consumers drop. This is the one place the relay can duplicate; a stall or a
        timeout never gets here (the producer's own retries are deduplicated by the broker)."""
        self._in_flight = None
        await self._reset_producer()

    async def backlog(self) -> int:
        async with self.db.read() as conn:
            count = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        RELAY_BACKLOG.labels(self.source).set(count)
        return count

    async def stop(self) -> None:
        self._stopping.set()
        self.db.committed.set()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self.producer_factory()
            try:
                await asyncio.wait_for(producer.start(), self.publish_timeout)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 10)
            except Exception:  # it is being thrown away
                pass

    async def _wait_for_work(self) -> None:
        try:
            await asyncio.wait_for(self.db.committed.wait(), self.poll_interval)
        except TimeoutError:
            pass

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass
