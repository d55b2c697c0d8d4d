"""A whole system the chaos suite may break: Kafka (one broker or a cluster), the contract's topics, and the
five services as real processes (`python -m services.<name>`) on free loopback ports with SQLite files in a
temporary directory. Only loopback; every process started here is stopped by close()."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.kafka.cluster import LocalKafkaCluster
from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars, free_port
from shared.auth import mint_token
from shared.contracts.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "dispatch", "warranty", "complaints", "analytics")
HOST = "127.0.0.1"


def _run_in_thread(coroutine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def consumed_topics() -> dict[str, list[str]]:
    """The topics each service's consumer group reads (its group is named after the service)."""
    from services.analytics.records import CONSUMES as analytics
    from services.complaints.reactions import CONSUMES as complaints
    from services.dispatch.reactions import CONSUMES as dispatch
    from services.intake.reactions import CONSUMES as intake
    from services.warranty.reactions import CONSUMES as warranty

    return {
        "intake": list(intake),
        "dispatch": list(dispatch),
        "warranty": list(warranty),
        "complaints": list(complaints),
        "analytics": list(analytics),
    }


@dataclass
class ServiceProcess:
    """One service process; kill() is a SIGKILL of its process group, restart() starts it on the same port
    and database file."""

    name: str
    port: int
    database: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            **self.env,
            "PORT": str(self.port),
            "HOST": HOST,
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.database}",
            # analytics' projection file: beside the database, never the repository's var/ of another run.
            "ANALYTICS_DUCKDB_PATH": str(self.database.with_suffix(".duckdb")),
        }
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /readyz answers 200 (database and Kafka reachable) or the deadline passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting; see {self.log}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()
        self.wait_ready()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read the service's SQLite database directly (what an operator's sqlite3 would show)."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()


@dataclass
class System:
    """Kafka plus the five services. `cluster=True`: three combined KRaft nodes, topics with replication 3
    and min.insync.replicas 2."""

    cluster: bool = False
    partitions: int = 3
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="servicetrail-chaos-")))
    broker: LocalKafkaBroker | None = None
    kafka_cluster: LocalKafkaCluster | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def bootstrap(self) -> str:
        return self.kafka_cluster.bootstrap if self.kafka_cluster else self.broker.bootstrap

    @property
    def replication(self) -> int:
        return 3 if self.cluster else 1

    @property
    def min_insync(self) -> int:
        return 2 if self.cluster else 1

    def token(self, *roles: str, subject: str | None = None, dealer_id: str | None = None) -> str:
        return mint_token(
            self.secret,
            subject=subject or (f"dealer:{dealer_id}" if dealer_id else roles[0]),
            roles=list(roles),
            dealer_id=dealer_id,
        )

    def start(self) -> System:
        ensure_jars()
        if self.cluster:
            self.kafka_cluster = LocalKafkaCluster(
                3, replication=3, min_insync=2, data_dir=self.work_dir / "kafka"
            ).start()
        else:
            self.broker = LocalKafkaBroker(data_dir=self.work_dir / "kafka").start()
        _run_in_thread(self.create_topics())  # callable from inside a running event loop too
        env = {
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "AUTH_SECRET": self.secret,
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            "RELAY_POLL_INTERVAL_MS": "50",
            "RELAY_LEASE_SECONDS": "2",
            "CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "DEADLINE_POLL_INTERVAL_MS": "1000",
            "KAFKA_TOPIC_PARTITIONS": str(self.partitions),
            "KAFKA_REPLICATION_FACTOR": str(self.replication),
            "KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync),
        }
        for name in SERVICES:
            self.services[name] = ServiceProcess(
                name, free_port(), self.work_dir / f"{name}.db", dict(env), self.work_dir / f"{name}.log"
            )
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready(timeout=120)
        return self

    async def create_topics(self) -> None:
        """The contract's topics, as ops create them: replication and min.insync.replicas of the cluster."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30000)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        name=topic,
                        num_partitions=self.partitions,
                        replication_factor=self.replication,
                        topic_configs={"min.insync.replicas": str(self.min_insync)},
                    )
                    for topic in ALL_TOPICS
                ]
            )
        finally:
            await admin.close()

    def close(self) -> None:
        for service in self.services.values():
            service.stop()
        if self.kafka_cluster is not None:
            self.kafka_cluster.close()
        if self.broker is not None:
            self.broker.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> System:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Signals the suite waits on -------------------------------------------------------------------------

    def outbox_backlog(self) -> dict[str, int]:
        """Events each service stored but has not yet published (its outbox rows)."""
        return {name: service.query("SELECT count(*) FROM outbox")[0][0] for name, service in self.services.items()}

    async def consumer_lag(self) -> dict[str, int]:
        """Records each service's consumer group has not yet committed, summed over its topics' partitions."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        await admin.start()
        await consumer.start()
        try:
            lag: dict[str, int] = {}
            for group, topics in consumed_topics().items():
                committed = await admin.list_consumer_group_offsets(group)
                partitions = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
                ends = await consumer.end_offsets(partitions)
                lag[group] = sum(
                    max(0, ends[tp] - (committed[tp].offset if tp in committed else 0)) for tp in partitions
                )
            return lag
        finally:
            await consumer.stop()
            await admin.close()

    async def wait_quiet(self, timeout: float = 120) -> dict[str, int]:
        """Until every outbox is empty and every consumer group has committed the end of its topics, twice in a
        row (a reaction's events land in an outbox after its consumer committed). Returns what was left when the
        deadline passed (empty when quiet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_rounds = 0
        left: dict[str, int] = {}
        while loop.time() < deadline:
            try:
                backlog = await asyncio.to_thread(self.outbox_backlog)
                lag = await self.consumer_lag()
            except Exception as exc:  # broker or a database briefly away: keep polling until the deadline
                left = {f"unreadable: {type(exc).__name__}": 1}
                await asyncio.sleep(0.5)
                continue
            left = {f"outbox:{k}": v for k, v in backlog.items() if v} | {f"lag:{k}": v for k, v in lag.items() if v}
            quiet_rounds = quiet_rounds + 1 if not left else 0
            if quiet_rounds >= 2:
                return {}
            await asyncio.sleep(0.5)
        return left
