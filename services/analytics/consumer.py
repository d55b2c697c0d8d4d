"""How analytics follows the four topics: a poll batch at a time, in one DuckDB transaction.

The shared consumer runner (`shared.messaging.consumer`) hands its handlers one SQL connection per event; a
projection in an analytical engine wants the opposite — many events per transaction — so analytics runs its own
loop on the same pieces: the CloudEvents reader, the contract registry, the DLQ with the reason, offsets
committed only after the batch is durable. Records that cannot be read go to the DLQ and the batch goes on;
a redelivered record (after a crash between the commit of the batch and of its offsets) is deduplicated by its
event id, so it has one effect."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from services.analytics.collector import fewer_collections
from services.analytics.projection import Projection
from services.analytics.records import AnalyticsEvent
from services.analytics.replay import decode_record
from shared.messaging.consumer import IdempotentConsumer
from shared.observability.metrics import CONSUMED, CONSUMER_LAG

log = logging.getLogger(__name__)


class BatchProjectionConsumer(IdempotentConsumer):
    """An IdempotentConsumer (its run loop, restart with backoff, DLQ and counters) whose unit of work is the
    whole poll batch, applied to the projection in one transaction."""

    def __init__(self, *, projection: Projection, changed: asyncio.Event, **kwargs) -> None:
        super().__init__(handlers={}, **kwargs)
        self.projection = projection
        self.changed = changed

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        # A batch's offsets are committed while the next batch is fetched and applied (awaited before the next
        # commit starts, and on the way out): the commit's round trip to the coordinator no longer delays the
        # next apply, and an offset is still only committed once its batch is durable.
        committing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.batch_size)
                if not batches:
                    continue
                with fewer_collections():  # a batch's objects live as long as the batch (collector.py)
                    events: list[AnalyticsEvent] = []
                    owners: list[ConsumerRecord] = []
                    dead: list[tuple[ConsumerRecord, str]] = []
                    for records in batches.values():
                        for record in records:
                            event, reason = decode_record(record, self.registry)
                            if event is None:
                                dead.append((record, reason or "unreadable"))
                            else:
                                events.append(event)
                                owners.append(record)
                    if not await self._apply_batch(events, owners):
                        return  # stopping before the batch was applied: its offsets stay where they are
                for record, reason in dead:
                    await self._to_dlq(record, reason)
                if committing is not None:
                    await committing
                committing = asyncio.create_task(self._commit(consumer, batches))
        finally:
            if committing is not None:
                await committing

    async def _apply_batch(self, events: list[AnalyticsEvent], records: list[ConsumerRecord]) -> bool:
        """Apply the batch in one transaction, retrying while the engine fails; an event that fails on its own
        (a bug the fold trips on) goes to the DLQ so the partition keeps flowing. False when stopping."""
        delay = 0.1
        failures = 0
        while True:
            try:
                new = await asyncio.to_thread(self.projection.apply, events)
                self._counted(records, events, new)
                return True
            except Exception as exc:
                failures += 1
                log.warning("applying a batch of %d events failed (%s)", len(events), exc)
                if self._stopping.is_set():
                    return False
                if failures >= self.handler_attempts and len(events) > 1:
                    return await self._one_by_one(events, records)
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _one_by_one(self, events: list[AnalyticsEvent], records: list[ConsumerRecord]) -> bool:
        for event, record in zip(events, records):
            for attempt in range(self.handler_attempts):
                try:
                    new = await asyncio.to_thread(self.projection.apply, [event])
                    self._counted([record], [event], new)
                    break
                except Exception as exc:
                    if self._stopping.is_set():
                        return False
                    if attempt == self.handler_attempts - 1:
                        await self._to_dlq(record, f"handler failed: {type(exc).__name__}: {exc}")
                    else:
                        await self._sleep(0.1)
        return True

    def _counted(self, records: list[ConsumerRecord], events: list[AnalyticsEvent], new: int) -> None:
        for record in records:
            CONSUMED.labels(self.name, record.topic, "applied").inc()
        self.counts["applied"] += new
        self.counts["duplicate"] += len(events) - new
        if new:
            self.changed.set()

    async def _commit(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # A rebalance took a partition; its new owner re-reads, and the event ids absorb it.
            log.info("commit after rebalance failed: %s", exc)
        for tp, offset in offsets.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(highwater - offset, 0))
