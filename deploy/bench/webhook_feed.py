"""CPU per event of intake's consumer feeding the webhook queue, the queue as at a git ref (`--before`) next to
the queue as checked out, in the same run, rounds interleaved. The records are what intake's own topic carries
for each POST /v1/service-requests (`service_request.received` of a request intake stored), handed straight to
`IdempotentConsumer.handle_records` over a SQLite file (no broker), 500 per poll, 100 per transaction. Three
workloads: nobody subscribes; 20 dealers subscribe to job.completed (not these events) and an admin to `*`
(one delivery queued per event); and, as the floor, a reaction doing nothing (the consumer's own cost: claim,
savepoint, commit). CPU is the whole process's (`time.process_time`: the event loop and SQLite's thread).

    .venv/bin/python -m deploy.bench.webhook_feed [--before main] [--events 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import types
import uuid
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select

from deploy.bench.payloads import received_event
from deploy.bench.revisions import module_at
from deploy.bench.webhook_queue import subscribe_twenty_dealers_and_an_admin
from services.intake.read_model import metadata, service_requests
from services.intake.webhooks import queue as queue_now
from services.intake.webhooks.tables import webhook_deliveries
from shared.clock import SystemClock, utcnow
from shared.eventstore.database import Database
from shared.eventstore.tables import service_schema
from shared.messaging.cloudevents import to_record
from shared.messaging.consumer import IdempotentConsumer
from shared.testing.kafka import envelope_for

QUEUE_PATH = "services/intake/webhooks/queue.py"
WORKLOADS = ("no subscription", "20 dealers + admin")


def queue_at(ref: str) -> types.ModuleType:
    """The queue module as it is at `ref`, loaded beside the checked-out one."""
    return module_at(ref, QUEUE_PATH, "webhook_queue_before")


def records(count: int) -> tuple[list[ConsumerRecord], list[dict[str, Any]]]:
    """`count` service_request.received records and the request rows intake stored for them."""
    out, rows = [], []
    for offset in range(count):
        data = received_event(f"SN-bench-{offset}")
        data = data.model_copy(update={"dealer_id": f"D{offset % 20}"})
        rows.append(
            {
                "request_id": data.request_id,
                "received_position": offset + 1,
                "status": "received",
                "dealer_id": data.dealer_id,
                "serial": data.product.serial,
                "received_at": utcnow(),
                "version": 1,
                "view": "{}",
            }
        )
        topic, key, value, headers = to_record(envelope_for(data, source="intake", sequence=1))
        out.append(ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers))
    return out, rows


async def _nothing(event: Any, conn: Any) -> None:
    return None


async def run(queue: types.ModuleType | None, workload: str, count: int, folder: Path) -> float:
    """CPU ms per event; `queue` None: a reaction doing nothing."""
    db = Database(f"sqlite+aiosqlite:///{folder}/{uuid.uuid4().hex}.db")
    await db.create_all(service_schema(metadata))
    batch, rows = records(count)
    async with db.transaction() as conn:
        await conn.execute(service_requests.insert(), rows)
        if workload == "20 dealers + admin":
            await subscribe_twenty_dealers_and_an_admin(conn)
    if queue is None:
        handlers = {"service_request.received": _nothing}
    else:
        handlers = queue.feeding_webhooks({}, queue.DeliveryQueue(SystemClock()))
    consumer = IdempotentConsumer(
        db=db,
        name="bench",
        topics=["intake.events"],
        handlers=handlers,
        consumer_factory=lambda: None,  # type: ignore[arg-type, return-value]  # records are handed over directly
        producer_factory=lambda: None,  # type: ignore[arg-type, return-value]  # nothing goes to a DLQ here
    )
    started = time.process_time()
    for at in range(0, count, 500):
        await consumer.handle_records(batch[at : at + 500])
    cpu = time.process_time() - started
    async with db.read() as conn:
        queued = (await conn.execute(select(func.count()).select_from(webhook_deliveries))).scalar_one()
    await db.dispose()
    expected = count if queue is not None and workload == "20 dealers + admin" else 0
    assert consumer.counts["applied"] == count, consumer.counts
    assert queued == expected, f"{workload}: {queued} deliveries queued, expected {expected}"
    return cpu * 1000 / count


async def main(before: str, count: int, rounds: int) -> None:
    variants: dict[str, types.ModuleType | None] = {
        "a reaction doing nothing": None,
        f"queue at {before}": queue_at(before),
        "queue now": queue_now,
    }
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for workload in WORKLOADS:
                for name, queue in variants.items():
                    if queue is None and workload != WORKLOADS[0]:
                        continue
                    ms = await run(queue, workload, count, Path(folder))
                    results.setdefault((workload, name), []).append(ms)
    print(f"intake's consumer, {count} service_request.received records, {rounds} rounds; CPU ms per event")
    print("| workload | variant | median | rounds |")
    print("|---|---|---|---|")
    for (workload, name), values in results.items():
        shown = " / ".join(f"{v:.3f}" for v in values)
        print(f"| {workload} | {name} | {statistics.median(values):.3f} | {shown} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="main", help="git ref of the queue to compare with")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.before, args.events, args.rounds))
