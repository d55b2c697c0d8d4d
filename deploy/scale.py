"""Scale out on one machine: run several replicas of each service in one consumer group, sharing one
database per service (PostgreSQL, given by `<SERVICE>_DATABASE_URL`, or the SQLite default file). Analytics'
replicas each build their own DuckDB copy of the projection, in consumer groups of their own.

`python -m deploy.scale --replicas 2 [--services intake,dispatch]`: replica r of a service listens on
its contract port + 10·r (intake: 8001, 8011, ...). The Kafka broker is KAFKA_BOOTSTRAP (default
127.0.0.1:9092, e.g. from `make kafka`). Ctrl-C stops them all."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.run import PORTS, ROOT, available_services, wait_healthy


@dataclass
class Replica:
    service: str
    index: int
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the replica gets no chance to clean up, as when a machine dies."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_replicas(
    service: str, replicas: int, env: dict[str, str], log_dir: Path, ports: list[int] | None = None
) -> list[Replica]:
    """Start the replicas and wait until each is healthy; if one fails, stop those already started."""
    started = []
    log_dir.mkdir(parents=True, exist_ok=True)
    for index in range(replicas):
        port = ports[index] if ports else PORTS[service] + 10 * index
        log = open(log_dir / f"{service}-{index}.log", "ab")
        own = {}
        if service == "analytics":  # each replica its own DuckDB file and consumer group: it reads every partition
            own = {
                "ANALYTICS_DUCKDB_PATH": str(log_dir / f"analytics-{index}-{port}.duckdb"),
                "CONSUMER_GROUP": f"{env.get('CONSUMER_GROUP', 'analytics')}-{index}",
            }
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=ROOT,
            env={**os.environ, **env, **own, "PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(Replica(service, index, port, process))
    try:
        for replica in started:
            wait_healthy(f"{replica.url}/healthz", replica.process)
    except BaseException:
        for replica in started:
            replica.kill()
        raise
    return started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--services", default=",".join(available_services()))
    args = parser.parse_args(argv)
    replicas: list[Replica] = []
    try:
        for service in args.services.split(","):
            env = {"KAFKA_BOOTSTRAP": os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")}
            url = os.environ.get(f"{service.upper()}_DATABASE_URL")
            if url:
                env["DATABASE_URL"] = url
            replicas += start_replicas(service, args.replicas, env, ROOT / "var" / "scale")
        for replica in replicas:
            print(f"{replica.service}[{replica.index}] {replica.url}")
        print("Stop with Ctrl-C.", flush=True)
        while all(r.process.poll() is None for r in replicas):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for replica in replicas:
            replica.stop()


if __name__ == "__main__":
    sys.exit(main())
