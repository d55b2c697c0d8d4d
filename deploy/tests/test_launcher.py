"""The launcher's own contract: version pinning, jar caching, broker_for_tests and the CLI behind `make kafka`."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.kafka.launcher import (
    KAFKA_VERSION,
    LIBS_DIR,
    POM,
    LocalKafkaBroker,
    broker_for_tests,
    ensure_jars,
    free_port,
)
from deploy.kafka.protocol import broker_is_ready

REPO = Path(__file__).resolve().parents[2]


def test_the_kafka_version_is_pinned_in_the_pom_only() -> None:
    assert KAFKA_VERSION.startswith("4.0.")
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in POM.read_text()


def test_ensure_jars_is_a_quick_no_op_once_the_jars_match_the_pom() -> None:
    ensure_jars()
    started = time.monotonic()
    assert ensure_jars() == LIBS_DIR
    assert time.monotonic() - started < 0.5
    for jar in (
        f"kafka_2.13-{KAFKA_VERSION}.jar",
        f"kafka-group-coordinator-{KAFKA_VERSION}.jar",
        f"kafka-transaction-coordinator-{KAFKA_VERSION}.jar",
        "log4j-core-2.24.3.jar",
    ):
        assert (LIBS_DIR / jar).is_file(), jar


@pytest.mark.kafka
def test_a_broker_that_cannot_bind_its_port_fails_fast_with_the_reason_and_cleans_up() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = LocalKafkaBroker(port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="Address already in use"), broker:
            pytest.fail("the broker should not have started")
    assert not broker.running
    assert not broker.data_dir.exists()


def test_broker_for_tests_takes_kafka_bootstrap_from_the_environment_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "kafka.example:19092")
    with broker_for_tests() as bootstrap:
        assert bootstrap == "kafka.example:19092"


@pytest.mark.kafka
def test_broker_for_tests_starts_a_broker_and_stops_it_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    with broker_for_tests() as bootstrap:
        host, port = bootstrap.rsplit(":", 1)
        assert broker_is_ready(host, int(port))
    assert not broker_is_ready(host, int(port), timeout=0.5)


def _read_until(process: subprocess.Popen[str], text: str, timeout: float) -> str:
    assert process.stdout is not None
    seen, deadline = "", time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while text not in seen:
            assert time.monotonic() < deadline and process.poll() is None, seen
            if selector.select(timeout=0.5):
                seen += process.stdout.readline()
    return seen


@pytest.mark.kafka
def test_the_cli_serves_until_sigterm_then_stops_the_broker_and_keeps_the_data(tmp_path: Path) -> None:
    port, controller_port, data_dir = free_port(), free_port(), tmp_path / "kafka"
    command = [
        sys.executable,
        "-m",
        "deploy.kafka.launcher",
        "--port",
        str(port),
        "--controller-port",
        str(controller_port),
        "--data-dir",
        str(data_dir),
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        output = _read_until(process, "Kafka ready on", timeout=90)
        assert f"127.0.0.1:{port}" in output
        assert broker_is_ready("127.0.0.1", port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not broker_is_ready("127.0.0.1", port, timeout=0.5)
    assert (data_dir / "kraft" / "meta.properties").is_file()
    assert "Kafka Server started" in (data_dir / "logs" / "server.log").read_text()


def test_a_cluster_id_never_starts_with_a_dash_that_the_format_tool_would_read_as_an_option():
    from deploy.kafka.launcher import new_cluster_id

    ids = [new_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
