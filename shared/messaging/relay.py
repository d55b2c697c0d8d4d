"""The outbox relay: publishes due events to Kafka in order, then marks them published.

At-least-once: a crash between Kafka's acknowledgement and the delete publishes a batch again with the same
`ce_id`s, which idempotent consumers drop. Several replicas may run: a lease in the database lets one
publish at a time (so per-stream order holds), and another takes over when its lease runs out.

Through a broker stall (SIGSTOP, a slow or restarting leader) the relay keeps its one idempotent producer and
the batch it handed to it: it waits for those very sends again rather than sending the rows anew, since a
second send of a row is a second record (the producer's idempotence only dedupes its own retries of a batch,
which it keeps making until the broker answers: with idempotence on, aiokafka never expires a batch). The
producer is replaced only when a send has failed for good (see `_in_flight_failed`)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Callable

from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.clock import utcnow
from shared.eventstore.database import Database
from shared.eventstore.store import _envelope
from shared.eventstore.tables import events, leases, outbox
from shared.messaging.cloudevents import to_record
from shared.observability.metrics import EVENTS_PUBLISHED, RELAY_BACKLOG, RELAY_ERRORS, RELAY_PUBLISHED
from shared.observability.tracing import current_traceparent, span

log = logging.getLogger(__name__)

ProducerFactory = Callable[[], AIOKafkaProducer]


class Lease:
    """A named lease in the database; `acquire` extends it when held, takes it when expired."""

    def __init__(self, db: Database, name: str, owner: str, seconds: float) -> None:
        self.db, self.name, self.owner, self.seconds = db, name, owner, seconds
        self._held_until = None

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

    async def acquire(self, now=None) -> bool:
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


async def _all_acknowledged(futures: list[asyncio.Future]) -> None:
    """Await the futures in order: most are done by the time we get to them, and awaiting a done future costs
    nothing, whereas gather() schedules a callback for each (a few µs per event); the first failure raises."""
    for future in futures:
        await future


def _tracing_on() -> bool:
    """Whether a tracer provider records spans. Without one (no OTLP endpoint), a producer span would only copy the
    event's own traceparent into the header, for some 25-35 µs per event: more than the Kafka send itself."""
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


@dataclass
class _InFlight:
    """Rows handed to the producer, and the task awaiting Kafka's acknowledgement of each of them."""

    rows: list
    acknowledged: asyncio.Task


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
        self._prefetched: list | None = None
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
                    if sent < self.batch_size:
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
            await self._reset_producer()
            try:
                await self.lease.release()
            except Exception:  # the lease runs out by itself
                pass

    async def _due(self, after: int = 0) -> list:
        """Up to a batch of due events after `after`, in position order."""
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(events)
                    .join(outbox, outbox.c.position == events.c.position)
                    .where(outbox.c.position > after)
                    .order_by(outbox.c.position)
                    .limit(self.batch_size)
                )
            ).all()

    async def publish_due(self) -> int:
        """Publish one batch of due events in position order; return how many were published. A batch handed
        to the producer in an earlier round that Kafka has not acknowledged yet is waited for, not sent again."""
        sent_now = self._in_flight is None
        if sent_now:
            prefetched, self._prefetched = self._prefetched, None
            rows = prefetched or await self._due()
            if not rows:
                RELAY_BACKLOG.labels(self.source).set(0)
                return 0
            await self._hand_to_producer(rows)
        in_flight = self._in_flight
        rows = in_flight.rows
        # While Kafka acknowledges this batch, read the next one. Only rows after this batch: nothing is sent
        # before this batch is acknowledged, so a failure here can never put a later event ahead of it. A row
        # with a lower position that commits late is left for a later round, which reads from the start.
        next_batch = (asyncio.create_task(self._due(after=rows[-1].position))
                      if sent_now and len(rows) == self.batch_size else None)
        try:
            try:
                # shield: a timeout stops our wait, not the acknowledgements (the producer keeps retrying).
                await asyncio.wait_for(asyncio.shield(in_flight.acknowledged), self.publish_timeout)
            except Exception:
                if in_flight.acknowledged.done():
                    await self._in_flight_failed()
                raise
            async with self.db.transaction() as conn:
                await conn.execute(delete(outbox).where(outbox.c.position.in_([r.position for r in rows])))
            self._in_flight = None
        except BaseException:
            if next_batch is not None:
                next_batch.cancel()
                await asyncio.gather(next_batch, return_exceptions=True)
            raise
        if next_batch is not None:
            self._prefetched = await next_batch
        self.published += len(rows)
        RELAY_PUBLISHED.labels(self.source).inc(len(rows))
        for event_type, count in Counter(row._mapping["type"] for row in rows).items():
            EVENTS_PUBLISHED.labels(self.source, event_type).inc(count)
        return len(rows)

    async def _hand_to_producer(self, rows: list) -> None:
        """Send the rows; whatever part of them the producer took is in flight, even when a send raised
        midway (the rest stays due and goes in a later batch, after these are acknowledged)."""
        producer = await self._ensure_producer()
        futures: list[asyncio.Future] = []
        tracing = _tracing_on()
        try:
            for row in rows:
                envelope = _envelope(row, self.source)
                if tracing:
                    # A producer span per event, child of the command's trace; its context travels in the header.
                    with span(self.source, f"{envelope.topic} publish", kind=SpanKind.PRODUCER,
                              parent=envelope.traceparent,
                              attributes={"messaging.system": "kafka", "messaging.destination.name": envelope.topic,
                                          "messaging.message.id": envelope.id,
                                          "cloudevents.event_type": envelope.type}):
                        envelope = replace(envelope, traceparent=current_traceparent(envelope.traceparent))
                topic, key, value, headers = to_record(envelope)
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        finally:
            if futures:
                self._in_flight = _InFlight(rows[:len(futures)], asyncio.ensure_future(_all_acknowledged(futures)))

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
        except asyncio.TimeoutError:
            pass

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
