"""Run a real single-node Apache Kafka broker (KRaft, combined broker+controller) from its Maven jars.

No Docker needed: ``ensure_jars()`` collects the broker's runtime jars with Maven (pinned in pom.xml),
``LocalKafkaBroker`` formats a log dir and runs ``kafka.Kafka`` on loopback ports, and
``broker_for_tests()`` picks KAFKA_BOOTSTRAP, a Docker container or a local broker.
CLI: ``python -m deploy.kafka.launcher [--port 9092] [--controller-port 9093] [--data-dir var/kafka]``.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from deploy.kafka.jars import KAFKA_VERSION, LIBS_DIR, POM, ensure_jars
from deploy.kafka.protocol import broker_is_ready

__all__ = [
    "KAFKA_VERSION",
    "LIBS_DIR",
    "POM",
    "LocalKafkaBroker",
    "broker_for_tests",
    "ensure_jars",
    "free_port",
    "new_cluster_id",
    "main",
]

_HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def new_cluster_id() -> str:
    """A random 22-character base64url cluster id, as ``kafka-storage.sh random-uuid`` prints.

    Like Kafka's own ``Uuid.randomUuid``, never one starting with '-': the format tool's argument parser
    would take it for an option (1 start in 64 failed before)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


_LOG4J2 = """\
status = warn
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.chatty.name = org.apache.kafka.clients
logger.chatty.level = WARN
"""


class LocalKafkaBroker:
    """One Kafka process in KRaft combined mode on loopback; data survives stop()/start()."""

    def __init__(
        self,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        num_partitions: int = 3,
        heap: str = "512m",
        cluster_id: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self._owns_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="kafka-")) if data_dir is None else Path(data_dir).resolve()
        self.num_partitions = num_partitions
        self.heap = heap
        self.cluster_id = cluster_id  # None: a new one when the log dir is first formatted
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offsets: dict[Path, int] = {}

    @property
    def bootstrap(self) -> str:
        return f"{_HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        """The broker's log4j2 log; ``stdout.log`` next to it holds what the JVM printed itself."""
        return self.data_dir / "logs" / "server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def settings(self) -> dict[str, str]:
        """The broker's server.properties; a cluster node overrides the quorum and replication keys."""
        kraft_dir = self.data_dir / "kraft"
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{_HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{_HOST}:{self.port},CONTROLLER://{_HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(kraft_dir),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "offsets.topic.segment.bytes": str(16 * 1024**2),
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "transaction.state.log.segment.bytes": str(16 * 1024**2),
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "log.segment.bytes": str(64 * 1024**2),
            "log.index.size.max.bytes": str(1024**2),
            "log.preallocate": "false",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024**2),
            # A restarted combined node must wait for its previous broker session to expire before it can
            # register again (DUPLICATE_BROKER_REGISTRATION); the default 9 s would slow every restart.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "4",
        }

    def _write_config(self) -> Path:
        config = self.data_dir / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in self.settings().items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_file))
        return config

    def _java(self, *args: str, heap: str = "256m") -> list[str]:
        log4j = self.data_dir / "log4j2.properties"
        return [
            "java",
            f"-Xmx{heap}",
            "-Xss1m",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            str(ensure_jars() / "*"),
            *args,
        ]

    def _format(self, config: Path) -> None:
        """Format the KRaft log dir once; an existing meta.properties means the data is kept."""
        if (self.data_dir / "kraft" / "meta.properties").exists():
            return
        command = self._java(
            "kafka.tools.StorageTool", "format", "-t", self.cluster_id or new_cluster_id(), "-c", str(config)
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"formatting {self.data_dir} failed:\n{result.stdout}\n{result.stderr}")

    def start(self, timeout: float = 90) -> LocalKafkaBroker:
        """Format if needed, start the JVM and return once the broker answers ApiVersions and Metadata."""
        if self.running:
            return self
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._format(config)
        self._log_offsets = {path: path.stat().st_size for path in self.log_file.parent.glob("*.log")}
        with open(self.log_file.parent / "stdout.log", "ab") as out:
            self._process = subprocess.Popen(
                self._java("kafka.Kafka", str(config), heap=self.heap),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                start_new_session=True,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not broker_is_ready(_HOST, self.port):
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise RuntimeError(f"Kafka exited with {code} while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"Kafka not ready within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)
        return self

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the broker's process group (a clean shutdown), SIGKILL it if it is still there after timeout."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        try:
            os.killpg(process.pid, signal.SIGCONT)  # a suspended broker would not act on SIGTERM
        except ProcessLookupError:
            pass
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        process.wait()

    def kill(self) -> None:
        """SIGKILL the broker's process group, as when its machine dies: no clean shutdown; start() again
        recovers from the log dir."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def suspend(self) -> None:
        """SIGSTOP: the broker freezes (a long GC pause, a stalled disk) with its sockets open."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after suspend()."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop, and delete the data dir if this broker created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The first error and the last lines this run wrote to the JVM output and the broker log."""
        parts = []
        for path in (self.log_file.parent / "stdout.log", self.log_file):
            if not path.exists():
                continue
            with open(path, "rb") as log:
                log.seek(self._log_offsets.get(path, 0))
                text = log.read().decode(errors="replace").splitlines()
            if not text:
                continue
            errors = [i for i, line in enumerate(text) if " ERROR " in line or " FATAL " in line]
            if errors and errors[0] < len(text) - lines:
                parts.append(f"--- first error in {path} ---\n" + "\n".join(text[errors[0] : errors[0] + 6]))
            parts.append(f"--- end of {path} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts) or "(no broker output)"

    def __enter__(self) -> LocalKafkaBroker:
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ fails: do not leak the temp dir
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextmanager
def broker_for_tests() -> Iterator[str]:
    """Yield a bootstrap string: $KAFKA_BOOTSTRAP, else a Docker container, else a LocalKafkaBroker."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    from deploy.kafka.containers import docker_kafka  # optional path: testcontainers may be missing

    with docker_kafka(KAFKA_VERSION) as bootstrap:
        if bootstrap is not None:
            yield bootstrap
            return
    ensure_jars()
    with LocalKafkaBroker() as broker:
        yield broker.bootstrap


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.kafka.launcher``: run a broker in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m deploy.kafka.launcher", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--data-dir", type=Path, help="kept across runs (default: a temp dir, deleted on exit)")
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--jars-only", action="store_true", help="only fetch the jars, then exit")
    args = parser.parse_args(argv)

    print(f"Kafka {KAFKA_VERSION} jars: {ensure_jars()}", flush=True)
    if args.jars_only:
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    broker = LocalKafkaBroker(args.port, args.controller_port, args.data_dir, heap=args.heap)
    started = time.monotonic()
    try:
        broker.start()
        print(
            f"Kafka ready on {broker.bootstrap} after {time.monotonic() - started:.1f}s "
            f"(data {broker.data_dir}, log {broker.log_file})",
            flush=True,
        )
        while not stop.wait(1.0):
            if not broker.running:
                print(f"Kafka died:\n{broker.log_tail()}", file=sys.stderr)
                return 1
        print("stopping Kafka ...", flush=True)
        return 0
    finally:
        broker.close()


if __name__ == "__main__":
    sys.exit(main())
