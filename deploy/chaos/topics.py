"""Read whole topics, and inject what a faulty world puts on them: duplicates of real records (as an
at-least-once producer resends them) and poison (records that are not CloudEvents, or carry bad data)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.clock import rfc3339, utcnow
from shared.contracts.topics import COMPLAINTS, DISPATCH, INTAKE, WARRANTY
from shared.messaging.kafka import reliable_producer

POISON_HEADER = "chaos_poison"
# A type some consumer of the topic handles, so that its bad data is judged rather than skipped.
HANDLED_TYPE = {
    INTAKE: "service_request.triaged",
    DISPATCH: "job.completed",
    WARRANTY: "warranty.checked",
    COMPLAINTS: "complaint.opened",
}


async def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[ConsumerRecord]:
    """Every record of `topic` up to its end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(partitions)
        wanted = {tp: end for tp, end in ends.items() if end > 0}
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while wanted and loop.time() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=200, max_records=5000)).items():
                records.extend(r for r in batch if r.offset < ends[tp])
                if batch and batch[-1].offset >= ends[tp] - 1:
                    wanted.pop(tp, None)
            for tp in list(wanted):
                if await consumer.position(tp) >= ends[tp]:
                    wanted.pop(tp)
        if wanted:
            raise TimeoutError(f"{topic}: could not read to the end within {timeout}s ({wanted})")
    finally:
        await consumer.stop()
    return records


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in (record.headers or ())}


@dataclass
class Injected:
    duplicate_ids: dict[str, list[str]] = field(default_factory=dict)  # topic -> event ids sent once more
    poison: dict[str, tuple[str, str]] = field(default_factory=dict)  # poison id -> (topic, kind)


async def inject_duplicates(bootstrap: str, topics: list[str], per_topic: int, injected: Injected) -> None:
    """Publish `per_topic` records of each topic a second time, byte for byte (same ce_id)."""
    producer = reliable_producer(bootstrap, "chaos-duplicates")
    await producer.start()
    try:
        for topic in topics:
            records = [r for r in await read_topic(bootstrap, topic) if headers_of(r).get("ce_id")]
            step = max(1, len(records) // max(per_topic, 1))
            chosen = records[::step][:per_topic]
            for record in chosen:
                await producer.send_and_wait(
                    topic, value=record.value, key=record.key, headers=list(record.headers or ())
                )
                injected.duplicate_ids.setdefault(topic, []).append(headers_of(record)["ce_id"])
    finally:
        await producer.stop()


async def inject_poison(bootstrap: str, topics: list[str], injected: Injected) -> None:
    """Per topic: one record that is not a CloudEvent (no headers, a value that is not JSON) and one CloudEvent
    of a handled type whose data breaks its schema. Each carries a `chaos_poison` header to be found again."""
    producer = reliable_producer(bootstrap, "chaos-poison")
    await producer.start()
    try:
        for topic in topics:
            unreadable = f"poison-{uuid.uuid4().hex[:12]}"
            await producer.send_and_wait(
                topic,
                value=b"\xff\xfe not a cloud event",
                key=unreadable.encode(),
                headers=[(POISON_HEADER, unreadable.encode())],
            )
            injected.poison[unreadable] = (topic, "unreadable")
            bad = f"poison-{uuid.uuid4().hex[:12]}"
            event_type = HANDLED_TYPE[topic]
            headers = {
                "ce_specversion": "1.0",
                "ce_id": str(uuid.uuid4()),
                "ce_source": "chaos",
                "ce_type": event_type,
                "ce_subject": bad,
                "ce_time": rfc3339(utcnow()),
                "ce_dataschema": f"{event_type}/1",
                "ce_sequence": "1",
                "content-type": "application/json",
                POISON_HEADER: bad,
            }
            await producer.send_and_wait(
                topic,
                value=json.dumps({"unexpected": True}).encode(),
                key=bad.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
            injected.poison[bad] = (topic, "bad_data")
    finally:
        await producer.stop()
