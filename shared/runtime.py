"""What every service process runs besides its routes: the database, the outbox relay, the idempotent consumer,
the deadline scheduler and the service's own background workers, started and stopped together in the FastAPI
lifespan (the composition root calls this)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import MetaData

from shared.auth import TokenVerifier
from shared.clock import Clock
from shared.contracts.topics import ALL_TOPICS
from shared.eventstore.database import Database
from shared.eventstore.store import EventStore
from shared.http.idempotency import IdempotencyStore
from shared.messaging import memory
from shared.messaging.consumer import Handler, IdempotentConsumer
from shared.messaging.kafka import ensure_topics, manual_commit_consumer, reliable_producer
from shared.messaging.relay import OutboxRelay
from shared.observability.tracing import configure_tracing
from shared.scheduling import DeadlineHandler, DeadlineScheduler
from shared.settings import DEVELOPMENT_SECRET, ServiceSettings

log = logging.getLogger(__name__)


class BackgroundWorker(Protocol):
    """A loop a service runs beside its routes: `run()` works until `stop()` asks it to finish (intake's webhook
    deliveries, analytics' projection consumer and alert monitor). Registered with `ServiceRuntime.add_worker`
    (or `kernel_lifespan(workers=...)`), it is started after the database is ready and stopped before it closes,
    like the relay, the consumer and the scheduler."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


STOP_TIMEOUT_SECONDS = 15.0  # a loop stuck on a broker that went away is cancelled after this


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    db: Database
    relay: OutboxRelay
    consumer: IdempotentConsumer | None
    metadata: MetaData
    scheduler: DeadlineScheduler | None = None
    workers: dict[str, BackgroundWorker] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def add_worker(self, name: str, worker: BackgroundWorker) -> None:
        """Run `worker` as a task named `name` from `start()` to `stop()` (a name is kept once)."""
        if name in self.workers:
            raise ValueError(f"a background worker named {name} is registered already")
        self.workers[name] = worker

    @classmethod
    def build(
        cls,
        settings: ServiceSettings,
        *,
        metadata: MetaData,
        db: Database,
        consumes: list[str],
        handlers: Mapping[str, Handler] | None = None,
        deadline_handler: DeadlineHandler | None = None,
        clock: Clock | None = None,
    ) -> ServiceRuntime:
        """`handlers`: the event type → handler table of the service's consumer; `deadline_handler`: what
        a due deadline does (services with SLAs), run by a DeadlineScheduler."""
        name = settings.service_name
        bootstrap = settings.kafka_bootstrap
        prefix = f"{settings.kafka_client_id_prefix}-{name}"
        relay = OutboxRelay(
            db,
            lambda: reliable_producer(bootstrap, f"{prefix}-relay"),
            source=name,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval_ms / 1000,
            lease_seconds=settings.relay_lease_seconds,
        )
        consumer = None
        if consumes:
            group = settings.consumer_group or name
            consumer = IdempotentConsumer(
                db=db,
                name=group,
                topics=consumes,
                handlers=handlers or {},
                consumer_factory=cls.consumer_factory(settings, consumes, group),
                producer_factory=cls.dead_letter_producer_factory(settings),
                batch_size=settings.consumer_batch_size,
                transaction_size=settings.consumer_transaction_size,
                service=name,
            )
        scheduler = None
        if deadline_handler is not None:
            scheduler = DeadlineScheduler(
                db, deadline_handler, source=name, clock=clock, poll_interval=settings.deadline_poll_interval_ms / 1000
            )
        return cls(settings=settings, db=db, relay=relay, consumer=consumer, metadata=metadata, scheduler=scheduler)

    @staticmethod
    def consumer_factory(
        settings: ServiceSettings, topics: list[str], group: str, **fetch_options: Any
    ) -> Callable[[], AIOKafkaConsumer]:
        """The service's consumer of `topics` in Kafka's consumer group `group` (the name its tracking records
        are kept under too, so the caller passes the one name to both), committing by hand, its session and
        heartbeat from the settings; `fetch_options` (fetch sizes…) go to the client."""
        client_id = f"{settings.kafka_client_id_prefix}-{settings.service_name}-consumer"
        return lambda: manual_commit_consumer(
            settings.kafka_bootstrap,
            group,
            topics,
            client_id,
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=max(settings.consumer_session_timeout_ms // 6, 500),
            **fetch_options,
        )

    @staticmethod
    def dead_letter_producer_factory(settings: ServiceSettings) -> Callable[[], AIOKafkaProducer]:
        """The producer the service's consumer sends poison to its dead-letter topic with."""
        client_id = f"{settings.kafka_client_id_prefix}-{settings.service_name}-dlq"
        return lambda: reliable_producer(settings.kafka_bootstrap, client_id)

    @staticmethod
    def database(settings: ServiceSettings) -> Database:
        return Database(
            settings.resolved_database_url(),
            sqlite_synchronous=settings.sqlite_synchronous,
            group_commit_limit=settings.sqlite_group_commit_limit,
        )

    async def start(self, *, create_tables: bool = True) -> None:
        configure_tracing(self.settings.service_name, self.settings.otel_exporter_otlp_endpoint)
        if self.settings.auth_secret == DEVELOPMENT_SECRET and not self.settings.auth_public_key:
            log.warning("AUTH_SECRET is the development default: anyone can mint tokens. Set it in production.")
        if create_tables and self.settings.database_auto_create:
            await self.db.create_all(self.metadata)
        self.tasks.append(asyncio.create_task(self._ensure_topics(), name="ensure-topics"))
        self.tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        if self.consumer is not None:
            self.tasks.append(asyncio.create_task(self.consumer.run(), name="consumer"))
        if self.scheduler is not None:
            self.tasks.append(asyncio.create_task(self.scheduler.run(), name="deadlines"))
        for name, worker in self.workers.items():
            self.tasks.append(asyncio.create_task(worker.run(), name=name))

    async def _ensure_topics(self) -> None:
        """Topics are normally created by ops (compose, `make run`); creating missing ones is harmless."""
        delay = 1.0
        while True:
            try:
                await ensure_topics(
                    self.settings.kafka_bootstrap,
                    ALL_TOPICS,
                    partitions=self.settings.kafka_topic_partitions,
                    replication=self.settings.kafka_replication_factor,
                    min_insync_replicas=self.settings.kafka_min_insync_replicas,
                )
                return
            except Exception as exc:
                log.info("topics not ensured yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    async def stop(self) -> None:
        """Ask every loop to finish, wait for them (a stuck one is cancelled), then close the database."""
        for worker in self.workers.values():
            await worker.stop()
        await self.relay.stop()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        for task in self.tasks:
            if task.get_name() == "ensure-topics":
                task.cancel()
        _, pending = await asyncio.wait(self.tasks, timeout=STOP_TIMEOUT_SECONDS) if self.tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.db.dispose()

    @asynccontextmanager
    async def serving(self, app: Any) -> AsyncIterator[None]:
        """For a FastAPI lifespan: start the runtime, hang on `app.state` what every route needs (settings,
        runtime, token verifier, idempotency store), and stop it all on the way out."""
        await self.start()
        app.state.settings = self.settings
        app.state.runtime = self
        app.state.verifier = TokenVerifier(
            self.settings.auth_secret, self.settings.auth_public_key, self.settings.auth_issuer
        )
        app.state.idempotency = IdempotencyStore(self.db)
        try:
            yield
        finally:
            await self.stop()

    async def kafka_reachable(self) -> None:
        """Readiness: a TCP connection to one bootstrap server opens (the in-process broker is always there)."""
        if memory.is_memory(self.settings.kafka_bootstrap):
            return
        last: Exception | None = None
        for server in self.settings.kafka_bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), 1.5)
                writer.close()
                return
            except Exception as exc:
                last = exc
        raise ConnectionError(f"no Kafka bootstrap server answers ({last})")

    async def database_reachable(self) -> None:
        await self.db.ping()


def serve(create_app: Callable[[Any], Any], settings: ServiceSettings) -> None:
    """`python -m services.<name>`: one uvicorn worker on the service's HOST and PORT; our own JSON logging.
    uvloop and httptools (uvicorn[standard]) named rather than left to "auto", which falls back to asyncio's loop
    and the pure-Python h11 parser without a word when they are missing (about twice the CPU per request); no
    access log (a log line per request); keep-alive as uvicorn's default (5 s)."""
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


def rebuild_from_event_store(
    settings: ServiceSettings, rebuild: Callable[[Database, EventStore], Awaitable[Any]], describe: Callable[[Any], str]
) -> None:
    """`python -m services.<name>.rebuild`: fold the service's read model afresh from its own event store."""

    async def run() -> None:
        db = ServiceRuntime.database(settings)
        try:
            print(describe(await rebuild(db, EventStore(source=settings.service_name))))
        finally:
            await db.dispose()

    asyncio.run(run())
