"""The partner receiver of the README, run as it is printed there: it receives, verifies and dedupes the
deliveries of the dealer's own cases."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deploy.kafka.launcher import free_port
from services.intake.tests.webhook_support import dealer, open_for, subscribe, webhook_intake
from shared.testing.app import eventually

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_receiver() -> str:
    text = README.read_text()
    section = text[text.index("**Verify and dedupe**") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


async def test_the_readme_receiver_gets_and_verifies_the_dealers_deliveries(tmp_path, event_bus):
    d1, d2 = dealer(), dealer()
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(readme_receiver())
    async with webhook_intake(tmp_path, event_bus) as intake:
        hook = await subscribe(intake, f"http://127.0.0.1:{port}/servicetrail", ["service_request.*"], dealer_id=d1)
        out = open(tmp_path / "receiver.out", "w+")
        receiver = subprocess.Popen(
            [sys.executable, str(script)],
            env={**os.environ, "WEBHOOK_SECRET": hook["secret"], "PORT": str(port)},
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:  # up when it answers (a GET is not allowed: 501)
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            mine, theirs = await open_for(intake, d1), await open_for(intake, d2)
            await intake.client.post(f"/v1/service-requests/{mine}/cancel", json={"reason": "x"}, headers=intake.agent)
            lines = await eventually(lambda: _lines(tmp_path / "receiver.out"), until=lambda lines: len(lines) >= 2)
            await eventually(
                lambda: intake.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=intake.auth("admin")),
                until=lambda answer: [d["status"] for d in answer.json()["items"]] == ["delivered", "delivered"],
            )
        finally:
            receiver.kill()
            receiver.wait()
            out.close()
    assert lines == [f"service_request.received {mine}", f"service_request.cancelled {mine}"]
    assert theirs not in "".join(lines)


async def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()
