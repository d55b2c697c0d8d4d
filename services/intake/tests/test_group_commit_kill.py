"""Group commit under a kill (issue: write path): intake takes concurrent opens, so its write transactions are
grouped into shared COMMITs, and is killed (SIGKILL) in the middle. Every open that was answered 201 is stored
after the restart, and every stored request is whole: its read row and its event, nothing of one without the
other."""

import asyncio
import os
import signal
import sqlite3
import uuid

import httpx

from deploy.kafka.launcher import free_port
from services.intake.app import IntakeSettings
from services.intake.tests.conftest import new_request_body
from services.intake.tests.test_crash_replay import start_intake
from shared.testing.app import bearer

CONCURRENCY = 32
KILL_AFTER_ANSWERS = 60


async def open_until_killed(url: str, headers: dict, answered: list[str], killed: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while not killed.is_set():
            try:
                response = await client.post(url, json=new_request_body(f"SN-{uuid.uuid4().hex[:10]}"), headers=headers)
            except httpx.HTTPError:
                return  # the process is gone
            assert response.status_code == 201, response.text
            answered.append(response.json()["id"])


async def test_every_open_answered_before_a_kill_is_stored_whole_after_the_restart(tmp_path, kafka_bootstrap):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/service-requests"
    headers = bearer(IntakeSettings(), "agent", sub="hotline-1")
    intake = await asyncio.to_thread(start_intake, tmp_path, kafka_bootstrap, port, "services.intake.app:create_app")
    answered: list[str] = []
    killed = asyncio.Event()
    try:
        load = [asyncio.create_task(open_until_killed(url, headers, answered, killed)) for _ in range(CONCURRENCY)]
        while len(answered) < KILL_AFTER_ANSWERS and not all(task.done() for task in load):
            await asyncio.sleep(0.01)
        os.kill(intake.pid, signal.SIGKILL)  # while the other opens are in flight
        killed.set()
        await asyncio.gather(*load)
        assert intake.wait(timeout=30) == -9
        assert len(answered) >= KILL_AFTER_ANSWERS

        with sqlite3.connect(f"{tmp_path}/intake.db") as conn:
            rows = {r[0] for r in conn.execute("SELECT request_id FROM service_requests")}
            received = [
                r[0] for r in conn.execute("SELECT stream_id FROM events WHERE type = 'service_request.received'")
            ]
        assert set(answered) <= rows, f"answered but not stored: {sorted(set(answered) - rows)[:5]}"
        assert sorted(rows) == sorted(received), "a read row without its event, or an event without its row"

        intake = await asyncio.to_thread(
            start_intake, tmp_path, kafka_bootstrap, port, "services.intake.app:create_app"
        )
        async with httpx.AsyncClient(timeout=30) as client:
            for request_id in answered:
                assert (await client.get(f"{url}/{request_id}", headers=headers)).status_code == 200
    finally:
        intake.kill()
        intake.wait()
