"""A multi-node Apache Kafka cluster (KRaft) on loopback from the same jars as ``LocalKafkaBroker``.

Every node runs combined (broker and controller), so a three-node cluster has a controller quorum of three and
survives the loss of any one node; topics can have three replicas with ``min.insync.replicas=2``. The chaos
suite kills a partition's leader and checks that nothing acknowledged is lost.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType

from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars, free_port, new_cluster_id
from deploy.kafka.protocol import broker_is_ready

__all__ = ["ClusterNode", "LocalKafkaCluster"]

_HOST = "127.0.0.1"


class ClusterNode(LocalKafkaBroker):
    """One combined node of a LocalKafkaCluster: its own ports and log dir, the cluster's id and quorum."""

    def __init__(
        self,
        node_id: int,
        *,
        port: int,
        controller_port: int,
        data_dir: Path,
        cluster_id: str,
        voters: str,
        replication: int,
        min_insync: int,
        heap: str,
    ) -> None:
        super().__init__(port, controller_port, data_dir, heap=heap, cluster_id=cluster_id)
        self.node_id = node_id
        self.voters = voters
        self.replication = replication
        self.min_insync = min_insync

    def settings(self) -> dict[str, str]:
        settings = super().settings()
        replicas, min_isr = str(self.replication), str(self.min_insync)
        settings.update(
            {
                "node.id": str(self.node_id),
                "controller.quorum.voters": self.voters,
                "default.replication.factor": replicas,
                "min.insync.replicas": min_isr,
                "offsets.topic.replication.factor": replicas,
                "transaction.state.log.replication.factor": replicas,
                "transaction.state.log.min.isr": min_isr,
                "share.coordinator.state.topic.replication.factor": replicas,
                "share.coordinator.state.topic.min.isr": min_isr,
                # Leadership moves back to the preferred replica soon after a killed node returns.
                "leader.imbalance.check.interval.seconds": "5",
                "replica.lag.time.max.ms": "10000",
            }
        )
        return settings


class LocalKafkaCluster:
    """``nodes`` combined KRaft nodes on free loopback ports, each with its own temp log dir."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        replication: int | None = None,
        min_insync: int | None = None,
        heap: str = "384m",
        data_dir: Path | None = None,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="kafka-cluster-")) if data_dir is None else Path(data_dir)
        self.replication = replication or min(nodes, 3)
        self.min_insync = min_insync or max(1, self.replication - 1)
        cluster_id = new_cluster_id()
        ports = set()
        while len(ports) < 2 * nodes:
            ports.add(free_port())
        ports_list = sorted(ports)
        client_ports, controller_ports = ports_list[:nodes], ports_list[nodes:]
        voters = ",".join(f"{i + 1}@{_HOST}:{controller_ports[i]}" for i in range(nodes))
        self.nodes = [
            ClusterNode(
                i + 1,
                port=client_ports[i],
                controller_port=controller_ports[i],
                data_dir=self.data_dir / f"node-{i + 1}",
                cluster_id=cluster_id,
                voters=voters,
                replication=self.replication,
                min_insync=self.min_insync,
                heap=heap,
            )
            for i in range(nodes)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def start(self, timeout: float = 120) -> LocalKafkaCluster:
        """Start every node at once (the quorum needs a majority before any of them is ready) and wait for all."""
        import subprocess

        ensure_jars()
        for node in self.nodes:
            node.log_file.parent.mkdir(parents=True, exist_ok=True)
            node._format(node._write_config())
        for node in self.nodes:
            node._log_offsets = {p: p.stat().st_size for p in node.log_file.parent.glob("*.log")}
            with open(node.log_file.parent / "stdout.log", "ab") as out:
                node._process = subprocess.Popen(
                    node._java("kafka.Kafka", str(node.data_dir / "server.properties"), heap=node.heap),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=node.data_dir,
                    start_new_session=True,
                )
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while not broker_is_ready(_HOST, node.port):
                if node._process is not None and node._process.poll() is not None:
                    tail = node.log_tail()
                    self.stop()
                    raise RuntimeError(f"Kafka node {node.node_id} exited while starting:\n{tail}")
                if time.monotonic() > deadline:
                    tail = node.log_tail()
                    self.stop()
                    raise TimeoutError(f"Kafka node {node.node_id} not ready within {timeout}s:\n{tail}")
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalKafkaCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
