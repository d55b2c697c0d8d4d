"""What intake's webhooks cost its consumer: the same Kafka records (job.accepted, which intake has no
reaction to) handled by intake's consumer as before the webhooks (ignored), with the webhook queue and no
subscription, and with 20 dealers' subscriptions plus an admin's that takes everything (one delivery queued
per event). No broker: the records go straight into `IdempotentConsumer.handle_records` over a SQLite file.

    .venv/bin/python -m deploy.bench.webhook_queue [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.read_model import metadata, service_requests
from services.intake.webhooks.queue import DeliveryQueue, feeding_webhooks
from services.intake.webhooks.tables import webhook_deliveries, webhooks
from shared.clock import SystemClock, utcnow
from shared.contracts.dispatch import JobAccepted
from shared.eventstore.database import Database
from shared.eventstore.tables import service_schema
from shared.messaging.cloudevents import to_record
from shared.messaging.consumer import IdempotentConsumer
from shared.testing.kafka import envelope_for


def records(count: int, requests: list[str]) -> list[ConsumerRecord]:
    out = []
    for offset in range(count):
        request_id = requests[offset % len(requests)]
        data = JobAccepted(job_id=f"J-{offset % 500}", request_id=request_id, technician_id="T1")
        topic, key, value, headers = to_record(envelope_for(data, source="dispatch", sequence=3))
        out.append(ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers))
    return out


async def _nothing(event, conn) -> None:
    return None


async def subscribe_twenty_dealers_and_an_admin(conn: AsyncConnection) -> None:
    """The "20 dealers + admin" workload's subscriptions: each dealer to job.completed, an admin to every type."""
    hooks = [(f"D{i}", ["job.completed"]) for i in range(20)] + [(None, ["*"])]
    await conn.execute(
        webhooks.insert(),
        [
            {
                "webhook_id": str(uuid.uuid4()),
                "created_position": i,
                "dealer_id": dealer,
                "status": "active",
                "types": json.dumps(wanted),
                "version": 1,
                "view": "{}",
            }
            for i, (dealer, wanted) in enumerate(hooks)
        ],
    )


async def run(variant: str, count: int, folder: Path) -> float:
    db = Database(f"sqlite+aiosqlite:///{folder}/{variant}.db")
    await db.create_all(service_schema(metadata))
    requests = [str(uuid.uuid4()) for _ in range(500)]
    async with db.transaction() as conn:
        await conn.execute(
            service_requests.insert(),
            [
                {
                    "request_id": r,
                    "received_position": i,
                    "status": "dispatched",
                    "dealer_id": f"D{i % 20}",
                    "serial": r,
                    "received_at": utcnow(),
                    "version": 3,
                    "view": "{}",
                }
                for i, r in enumerate(requests)
            ],
        )
        if variant == "20 dealers + admin":
            await subscribe_twenty_dealers_and_an_admin(conn)
    if variant == "before (ignored)":
        handlers = {}
    elif variant == "a reaction doing nothing":  # the consumer's own cost of an event it handles
        handlers = {"job.accepted": _nothing}
    else:
        handlers = feeding_webhooks({}, DeliveryQueue(SystemClock()))
    consumer = IdempotentConsumer(
        db=db,
        name="bench",
        topics=["dispatch.events"],
        handlers=handlers,
        consumer_factory=lambda: None,  # type: ignore[arg-type, return-value]
        producer_factory=lambda: None,  # type: ignore[arg-type, return-value]
    )
    batch = records(count, requests)
    started = time.perf_counter()
    for at in range(0, count, 500):
        await consumer.handle_records(batch[at : at + 500])
    seconds = time.perf_counter() - started
    async with db.read() as conn:
        queued = (await conn.execute(select(func.count()).select_from(webhook_deliveries))).scalar_one()
    await db.dispose()
    expected = count if variant == "20 dealers + admin" else 0
    assert queued == expected, f"{variant}: {queued} deliveries queued, expected {expected}"
    return count / seconds


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        print(f"intake's consumer, {count} job.accepted records (SQLite, synchronous=FULL), records/s:")
        baseline = None
        for variant in (
            "before (ignored)",
            "a reaction doing nothing",
            "webhooks, no subscription",
            "20 dealers + admin",
        ):
            rate = await run(variant, count, Path(folder))
            baseline = baseline or rate
            print(f"  {variant:<28} {rate:>9.0f}   ({rate / baseline:.2f}× the baseline)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    asyncio.run(main(parser.parse_args().events))
