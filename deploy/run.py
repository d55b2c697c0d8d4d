"""`make run`: Kafka (unless KAFKA_BOOTSTRAP points at one), the contract's topics, and every service that
exists, on SQLite files under var/; prints where everything is and an admin token. Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars
from shared.auth import mint_token
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.kafka import ensure_topics
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
PORTS = {"intake": 8001, "dispatch": 8002, "warranty": 8003, "complaints": 8004, "analytics": 8005}


def available_services() -> list[str]:
    return [name for name in PORTS if (ROOT / "services" / name / "__main__.py").exists()]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with code {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not become healthy within {timeout:.0f}s")


def main() -> int:
    VAR.mkdir(exist_ok=True)
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        ensure_jars()
        broker = LocalKafkaBroker(
            port=int(os.environ.get("KAFKA_PORT", "9092")),
            controller_port=int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
            data_dir=VAR / "kafka",
        )
        print(f"starting Kafka on {broker.bootstrap} (data in {broker.data_dir}) ...", flush=True)
        broker.start()
        bootstrap = broker.bootstrap
    topic_settings = ServiceSettings()  # KAFKA_TOPIC_PARTITIONS, KAFKA_REPLICATION_FACTOR, KAFKA_MIN_INSYNC_REPLICAS
    asyncio.run(
        ensure_topics(
            bootstrap,
            ALL_TOPICS,
            partitions=topic_settings.kafka_topic_partitions,
            replication=topic_settings.kafka_replication_factor,
            min_insync_replicas=topic_settings.kafka_min_insync_replicas,
        )
    )

    processes: dict[str, subprocess.Popen] = {}
    try:
        for name in available_services():
            port = PORTS[name]
            env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "PORT": str(port)}
            env.setdefault("DATABASE_URL", "")
            log = open(VAR / f"{name}.log", "ab")
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for name, process in processes.items():
            wait_healthy(f"http://127.0.0.1:{PORTS[name]}/healthz", process)

        token = mint_token(ServiceSettings().auth_secret, subject="admin", roles=["admin"])
        print("\nServicetrail is running.\n")
        print(f"  Kafka      {bootstrap}   (topics: {', '.join(t for t in ALL_TOPICS if not t.endswith('.dlq'))})")
        for name in processes:
            base = f"http://127.0.0.1:{PORTS[name]}"
            print(f"  {name:<10} {base}   docs {base}/docs   log var/{name}.log")
        if "analytics" in processes:
            print(
                f"\n  dashboard  http://127.0.0.1:{PORTS['analytics']}/dashboard#token=<TOKEN>   (fill it: make demo)"
            )
        print(f"\nAdmin token (12 h):\n  export TOKEN={token}\n")
        print('Try:  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/v1/service-requests')
        print("Stop with Ctrl-C.", flush=True)

        stop = {"now": False}
        # Both, explicitly: a shell that starts us in the background may have set SIGINT to be ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.update(now=True))
        while not stop["now"]:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; see var/{name}.log", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", flush=True)
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
