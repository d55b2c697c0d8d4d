"""A consumer process for tests of the consumer runner: every `service_request.escalated` event appends a row
to `effects` (deliberately without a unique key, so a double effect would show as two rows). An event whose
subject starts with `reject-` is poison by the handler's verdict: its row is written, then rejected
(PermanentFailure), so the row must be undone and the event sent to the DLQ.

`python -m shared.testing.counting_consumer DATABASE_URL BOOTSTRAP GROUP TOPIC [DELAY_SECONDS]`"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import IncomingEvent
from shared.eventstore.database import Database
from shared.eventstore.tables import metadata as shared_metadata
from shared.messaging.consumer import IdempotentConsumer, PermanentFailure
from shared.messaging.kafka import manual_commit_consumer, reliable_producer

REJECTED_PREFIX = "reject-"

test_metadata = MetaData()
effects = Table(
    "effects",
    test_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("subject", String(80), nullable=False),
)


def counting_consumer(
    db: Database,
    bootstrap: str,
    group: str,
    topic: str,
    delay: float = 0.0,
    fail_subjects: frozenset[str] = frozenset(),
) -> IdempotentConsumer:
    async def record_effect(event: IncomingEvent[Any], conn: AsyncConnection) -> None:
        if event.envelope.subject in fail_subjects:
            raise RuntimeError(f"cannot handle {event.envelope.subject}")
        await conn.execute(insert(effects).values(event_id=event.id, subject=event.envelope.subject))
        if event.envelope.subject.startswith(REJECTED_PREFIX):
            raise PermanentFailure(f"{event.envelope.subject} is rejected")
        if delay:
            await asyncio.sleep(delay)

    return IdempotentConsumer(
        db=db,
        name=group,
        topics=[topic],
        handlers={"service_request.escalated": record_effect},
        # A short session: a killed member's partitions are reassigned in seconds, not the default 30.
        consumer_factory=lambda: manual_commit_consumer(
            bootstrap, group, [topic], "counting-consumer", session_timeout_ms=6000, heartbeat_interval_ms=1000
        ),
        producer_factory=lambda: reliable_producer(bootstrap, "counting-consumer-dlq"),
        batch_size=20,
        handler_attempts=3,
    )


async def prepare(db: Database) -> None:
    await db.create_all(shared_metadata)
    await db.create_all(test_metadata)


async def main(url: str, bootstrap: str, group: str, topic: str, delay: float) -> None:
    db = Database(url)
    await prepare(db)
    await counting_consumer(db, bootstrap, group, topic, delay).run()


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]) if len(sys.argv) > 5 else 0)
    )
