"""Idempotency-Key after a crash (design.md, HTTP API): intake is killed (SIGKILL) right after a request's
write was committed and before it answered; the client's retry with the same key gets the original 201."""

import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from deploy.kafka.launcher import free_port
from services.intake.app import IntakeSettings
from services.intake.tests.conftest import new_request_body
from shared.testing.app import bearer


def start_intake(
    tmp_path,
    kafka_bootstrap: str,
    port: int,
    factory: str = "services.intake.tests.crashing_app:create",
    **settings: str,
) -> subprocess.Popen:
    """intake under uvicorn (the process a SIGKILL can take down), its database in `tmp_path`; `settings` are
    further environment variables. Returns once /healthz answers."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/intake.db",
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CONSUMER_GROUP": f"intake-crash-{uuid.uuid4().hex[:8]}",
        "LOG_JSON": "false",
        **settings,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("intake did not start")


def test_a_retry_after_a_crash_between_commit_and_answer_replays_the_original_201(tmp_path, kafka_bootstrap):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/service-requests"
    headers = {**bearer(IntakeSettings(), "agent", sub="hotline-1"), "Idempotency-Key": "crash-k1"}
    body = new_request_body(f"SN-{uuid.uuid4().hex[:8]}")
    intake = start_intake(tmp_path, kafka_bootstrap, port)
    try:
        with pytest.raises(httpx.HTTPError):
            httpx.post(url, json=body, headers={**headers, "X-Test-Crash": "after-commit"}, timeout=30)
        assert intake.wait(timeout=30) == -9, "the process was killed mid-request"
        intake = start_intake(tmp_path, kafka_bootstrap, port)
        retried = httpx.post(url, json=body, headers=headers, timeout=30)
        assert retried.status_code == 201, retried.text
        assert retried.headers["idempotent-replayed"] == "true"
        stored = httpx.get(f"{url}?serial={body['product']['serial']}", headers=headers, timeout=30).json()["items"]
        assert [r["id"] for r in stored] == [retried.json()["id"]]
    finally:
        intake.kill()
        intake.wait()
