"""An in-process Kafka for the fast test tier, in the spirit of FastStream's TestBroker: a service whose
`KAFKA_BOOTSTRAP` is `memory://<name>` gets producers and consumers of the in-memory broker of that name instead
of aiokafka's (`shared.messaging.kafka` picks), and runs its relay, consumer and DLQ unchanged.

What it keeps of Kafka, because the relay and the consumers rely on it: topics of fixed partitions, a keyed
record on the partition `send()` would choose (murmur2, so one aggregate's events stay in order on one
partition), offsets per partition, records as aiokafka's `ConsumerRecord` with the CloudEvents headers the
relay wrote, consumer groups that share a topic's partitions among their members and keep committed offsets
(a new group starts at the beginning, a restarted member at its group's committed offset; a commit for a
partition the member no longer owns fails as after a rebalance), and `<topic>.dlq` topics. What it leaves out:
replication, transactions, retention, a broker that can fail. Those stay in the suites marked `kafka`.

One process only: the broker is an object in memory, shared by everything on the same event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata

from shared.messaging.partitioning import default_partition

SCHEME = "memory://"
MAX_REQUEST_SIZE = 1048576  # aiokafka's default max_request_size

Record: TypeAlias = ConsumerRecord  # of bytes keys and values
Headers = Sequence[tuple[str, bytes]]

_BROKERS: dict[str, InMemoryBroker] = {}


def is_memory(bootstrap: str) -> bool:
    return bootstrap.startswith(SCHEME)


def broker_for(bootstrap: str) -> InMemoryBroker:
    """The broker a `memory://<name>` address names (made on first use, as a fresh cluster)."""
    name = bootstrap.removeprefix(SCHEME)
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = InMemoryBroker(name)
    return broker


def forget(bootstrap: str) -> None:
    """Drop a named broker and its records (the end of a test session)."""
    _BROKERS.pop(bootstrap.removeprefix(SCHEME), None)


@dataclass
class _Group:
    members: list[InMemoryConsumer] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)


class InMemoryBroker:
    """Topics of partitions (lists of records), consumer groups and their committed offsets."""

    def __init__(self, name: str, *, default_partitions: int = 3) -> None:
        self.name = name
        self.default_partitions = default_partitions
        self.topics: dict[str, list[list[Record]]] = {}
        self.groups: dict[str, _Group] = {}
        self._waiters: list[asyncio.Future[None]] = []

    # --- topics --------------------------------------------------------------------------------------------

    def create_topics(self, topics: Iterable[str], partitions: int | None = None) -> None:
        for topic in topics:
            self.topics.setdefault(topic, [[] for _ in range(partitions or self.default_partitions)])

    def partitions_of(self, topic: str) -> list[int]:
        """A topic's partitions; an unknown topic is created (as a broker with auto-creation would)."""
        self.create_topics([topic])
        return list(range(len(self.topics[topic])))

    def append(
        self, topic: str, partition: int | None, key: bytes | None, value: bytes | None, headers: Headers
    ) -> Record:
        """Store one record at the end of its partition (the key's, when none is given) and wake readers."""
        partitions = self.partitions_of(topic)
        if partition is None:
            partition = default_partition(key, partitions) if key is not None else 0
        log = self.topics[topic][partition]
        record: Record = ConsumerRecord(
            topic=topic,
            partition=partition,
            offset=len(log),
            timestamp=int(time.time() * 1000),
            timestamp_type=0,
            key=key,
            value=value,
            checksum=None,
            serialized_key_size=len(key) if key is not None else -1,
            serialized_value_size=len(value) if value is not None else -1,
            headers=tuple(headers),
        )
        log.append(record)
        self._wake_readers()
        return record

    def _wake_readers(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def wake_group(self, group_id: str) -> None:
        """Every member of the group returns from `getmany` at once (the one it waits in, or its next), with what
        it has, possibly nothing, as the Java client's `wakeup()`: a consumer asked to stop then stops without
        waiting out its poll's timeout (tests stop hundreds of services; a real broker is not woken so)."""
        for member in self.group(group_id).members:
            member.woken = True
        self._wake_readers()

    def end_offset(self, tp: TopicPartition) -> int:
        self.partitions_of(tp.topic)
        return len(self.topics[tp.topic][tp.partition])

    def records(self, topic: str) -> list[Record]:
        """Every record of a topic, partition by partition (for tests)."""
        return [record for log in self.topics.get(topic, []) for record in log]

    async def wait_for_records(self, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            if waiter in self._waiters:  # no record came: forget the waiter (an idle reader polls often)
                self._waiters.remove(waiter)

    # --- groups --------------------------------------------------------------------------------------------

    def group(self, group_id: str) -> _Group:
        return self.groups.setdefault(group_id, _Group())

    def commit(self, group_id: str, offsets: dict[TopicPartition, int]) -> None:
        self.group(group_id).committed.update(offsets)

    def committed(self, group_id: str, tp: TopicPartition) -> int | None:
        return self.group(group_id).committed.get(tp)

    def join(self, member: InMemoryConsumer) -> None:
        group = self.group(member.group_id or "")
        group.members.append(member)
        self._rebalance(group, member.subscription)

    def leave(self, member: InMemoryConsumer) -> None:
        group = self.group(member.group_id or "")
        if member in group.members:
            group.members.remove(member)
            self._rebalance(group, member.subscription)

    def _rebalance(self, group: _Group, topics: Iterable[str]) -> None:
        """Share the topics' partitions among the members round-robin (Kafka's round-robin assignor); each
        member resumes a partition it was given at the group's committed offset."""
        every = sorted(TopicPartition(t, p) for t in set(topics) for p in self.partitions_of(t))
        members = group.members
        for member in members:
            member._assign([tp for i, tp in enumerate(every) if members[i % len(members)] is member])


class InMemoryProducer:
    """The part of `AIOKafkaProducer` the relay, the consumer's DLQ and the test helpers use."""

    def __init__(
        self,
        broker: InMemoryBroker,
        client_id: str = "",
        *,
        max_batch_size: int = 256 * 1024,
        max_request_size: int = MAX_REQUEST_SIZE,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.max_batch_size = max_batch_size
        self._max_request_size = max_request_size  # the relay reads it under aiokafka's name
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False

    def _check_started(self) -> None:
        if not self._started:
            raise IllegalStateError("the producer is not started")

    async def partitions_for(self, topic: str) -> set[int]:
        return set(self.broker.partitions_of(topic))

    def create_batch(self) -> _BatchBuilder:
        return _BatchBuilder(self.max_batch_size)

    async def send_batch(self, batch: _BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[RecordMetadata]:
        """Store the batch's records, in order, on `partition`; the future holds the first one's metadata."""
        self._check_started()
        stored = [self.broker.append(topic, partition, key, value, headers) for key, value, headers in batch.records]
        if not stored:
            return _done(RecordMetadata(topic, partition, TopicPartition(topic, partition), -1, -1, 0, 0))
        return _done(_metadata(stored[0]))

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        self._check_started()
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or ())
        if size > self._max_request_size:
            raise MessageSizeTooLargeError(f"the record is {size} bytes, more than {self._max_request_size}")
        return _done(_metadata(self.broker.append(topic, partition, key, value, headers or ())))

    async def send_and_wait(self, topic: str, *args: Any, **kwargs: Any) -> RecordMetadata:
        """`send` (same arguments), then its acknowledgement."""
        return await (await self.send(topic, *args, **kwargs))


class _BatchBuilder:
    """A producer batch: records appended until it holds `max_bytes` (then `append` answers None, as aiokafka's
    `BatchBuilder` does when full)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.records: list[tuple[bytes | None, bytes | None, Headers]] = []

    def append(
        self, *, timestamp: int | None, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> object | None:
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers) + 21
        if self.records and self.size + size > self.max_bytes:
            return None
        self.records.append((key, value, headers))
        self.size += size
        return self

    def close(self) -> None:
        """Nothing more is appended (as aiokafka's `BatchBuilder.close`); a batch here is stored when handed over."""


class InMemoryConsumer:
    """The part of `AIOKafkaConsumer` the idempotent consumer, analytics' batch consumer and replay, and the
    test helpers use: a group member (or, without `group_id`, a reader of every partition it subscribes to or is
    assigned), reading from its positions, committing offsets only when told to."""

    def __init__(
        self,
        broker: InMemoryBroker,
        *topics: str,
        group_id: str | None = None,
        auto_offset_reset: str = "earliest",
        **_options: Any,
    ) -> None:
        self.broker = broker
        self.subscription = list(topics)
        self.group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self._assigned: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._started = False
        self.woken = False  # `InMemoryBroker.wake_group`: the pending or next `getmany` returns at once

    async def start(self) -> None:
        self._started = True
        if self.group_id is not None and self.subscription:
            self.broker.join(self)
        elif self.subscription:
            self.assign([TopicPartition(t, p) for t in self.subscription for p in self.broker.partitions_of(t)])

    async def stop(self) -> None:
        if self._started and self.group_id is not None and self.subscription:
            self.broker.leave(self)
        self._started = False
        self._assigned = []

    def _assign(self, partitions: list[TopicPartition]) -> None:
        """Given by the group: resume each partition at the committed offset (or by `auto_offset_reset`)."""
        kept = {tp: self._positions[tp] for tp in partitions if tp in self._assigned and tp in self._positions}
        self._assigned = list(partitions)
        self._positions = {tp: kept.get(tp, self._starting_offset(tp)) for tp in partitions}

    def _starting_offset(self, tp: TopicPartition) -> int:
        committed = self.broker.committed(self.group_id, tp) if self.group_id is not None else None
        if committed is not None:
            return committed
        return 0 if self.auto_offset_reset == "earliest" else self.broker.end_offset(tp)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._assigned = list(partitions)
        self._positions = {tp: self._starting_offset(tp) for tp in partitions}

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.broker.partitions_of(topic))

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self._assigned):
            self._positions[tp] = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.broker.end_offset(tp) for tp in partitions}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.broker.end_offset(tp)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.broker.committed(self.group_id, tp) if self.group_id is not None else None

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        if self.group_id is None:
            raise IllegalStateError("a consumer without a group cannot commit")
        offsets = dict(self._positions) if offsets is None else offsets
        lost = [tp for tp in offsets if tp not in self._assigned]
        if lost and self.subscription:
            raise CommitFailedError(f"partitions {sorted(map(str, lost))} were reassigned")
        self.broker.commit(self.group_id, offsets)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        """Up to `max_records` records from the positions of the assigned (or named) partitions, in offset order
        per partition; waits up to `timeout_ms` when there are none."""
        if not self._started:
            raise IllegalStateError("the consumer is not started")
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while True:
            found = self._fetch(partitions, max_records)
            remaining = deadline - asyncio.get_running_loop().time()
            if found or remaining <= 0 or not self._started or self.woken:
                self.woken = False
                return found
            await self.broker.wait_for_records(remaining)

    def _fetch(
        self, partitions: Sequence[TopicPartition], max_records: int | None
    ) -> dict[TopicPartition, list[Record]]:
        budget = max_records or 500
        found: dict[TopicPartition, list[Record]] = {}
        for tp in partitions or self._assigned:
            if tp in self._paused or tp not in self._positions or budget <= 0:
                continue
            log = self.broker.topics[tp.topic][tp.partition]
            position = self._positions[tp]
            records = log[position : position + budget]
            if records:
                found[tp] = records
                self._positions[tp] = position + len(records)
                budget -= len(records)
        return found


def _metadata(record: Record) -> RecordMetadata:
    return RecordMetadata(
        record.topic,
        record.partition,
        TopicPartition(record.topic, record.partition),
        record.offset,
        record.timestamp,
        0,
        0,
    )


def _done(result: RecordMetadata) -> asyncio.Future[RecordMetadata]:
    future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future
