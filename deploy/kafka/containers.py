"""Optional: the apache/kafka image in KRaft mode through testcontainers, when a Docker engine answers."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deploy.kafka.launcher import free_port, new_cluster_id
from deploy.kafka.protocol import broker_is_ready

_DOCKER_SOCKET = "/var/run/docker.sock"


@functools.cache
def docker_available() -> bool:
    """Probe the Docker engine once per process: ``docker info``, else a /_ping on the local socket."""
    if shutil.which("docker"):
        try:
            return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
    if os.environ.get("DOCKER_HOST"):
        return True  # no CLI to ask; testcontainers will try and we fall back if it fails
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(_DOCKER_SOCKET)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b"OK" in sock.recv(1024)
    except OSError:
        return False


def _kraft_env(host: str, port: int) -> dict[str, str]:
    """Full single-node KRaft config: the image ignores its defaults once any KAFKA_* variable is given."""
    return {
        "CLUSTER_ID": new_cluster_id(),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_LISTENERS": f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://localhost:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{host}:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_NUM_PARTITIONS": "3",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "5",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    }


def _start(version: str, timeout: float) -> tuple[Any, str] | None:
    """Start the container and wait until it serves requests; None (after cleaning up) on any failure."""
    if not docker_available():
        return None
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError:
        return None
    container: Any = None
    try:
        container = DockerContainer(f"apache/kafka:{version}")
        host, port = container.get_docker_client().host(), free_port()
        for key, value in _kraft_env(host, port).items():
            container.with_env(key, value)
        container.with_bind_ports(port, port)
        container.start()
        deadline = time.monotonic() + timeout
        while not broker_is_ready(host, port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"apache/kafka:{version} not ready within {timeout}s")
            time.sleep(0.5)
        return container, f"{host}:{port}"
    except Exception as exc:  # noqa: BLE001 - any Docker trouble means: use the local broker instead
        print(f"Kafka in Docker failed ({exc!r}); falling back to the local broker", file=sys.stderr)
        if container is not None:
            try:
                container.stop()
            except Exception:  # noqa: BLE001
                pass
        return None


@contextmanager
def docker_kafka(version: str, timeout: float = 120) -> Iterator[str | None]:
    """Yield the bootstrap of apache/kafka:<version> in Docker, or None when Docker is not usable."""
    started = _start(version, timeout)
    if started is None:
        yield None
        return
    container, bootstrap = started
    try:
        yield bootstrap
    finally:
        container.stop()
