"""intake killed (SIGKILL) while deliveries are in flight loses none: the queue is in its database, the
in-flight ones' leases expire, and a restarted intake delivers every one."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from deploy.kafka.launcher import free_port
from services.intake.app import IntakeSettings
from services.intake.reactions import CONSUMES
from services.intake.tests.conftest import new_request_body
from services.intake.tests.test_crash_replay import start_intake
from services.intake.tests.webhook_receiver import Receiver
from services.intake.tests.webhook_support import dealer, until_received, verified
from shared.testing.app import bearer
from shared.testing.kafka import start_group_at_end_now


async def test_intake_killed_mid_delivery_loses_no_delivery(tmp_path, kafka_bootstrap):
    d1 = dealer()
    receiver = Receiver(mode="hang")
    await receiver.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "CONSUMER_GROUP": f"intake-webhook-crash-{uuid.uuid4().hex[:8]}",
        "LOG_JSON": "false",
        "RELAY_POLL_INTERVAL_MS": "50",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_ALLOW_HTTP_FOR_ALLOWED_HOSTS": "true",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_RETRY_SCHEDULE": ",".join(["0.5"] * 40),
        "WEBHOOK_POLL_INTERVAL_MS": "50",
    }
    start_group_at_end_now(kafka_bootstrap, env["CONSUMER_GROUP"], CONSUMES, keep_committed=True)
    own = bearer(IntakeSettings(), "dealer", dealer_id=d1)
    intake = await asyncio.to_thread(
        start_intake, tmp_path, kafka_bootstrap, port, "services.intake.app:create_app", **env
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            hook = (
                await client.post(
                    "/v1/webhooks", json={"url": receiver.url, "types": ["service_request.*"]}, headers=own
                )
            ).json()
            requests = []
            for _ in range(3):
                body = new_request_body(f"SN-{uuid.uuid4().hex[:10]}", channel="dealer")
                requests.append((await client.post("/v1/service-requests", json=body, headers=own)).json()["id"])
            for request_id in requests:
                answer = await client.post(
                    f"/v1/service-requests/{request_id}/cancel", json={"reason": "sold the unit"}, headers=own
                )
                assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while receiver.requests == 0:  # a delivery is on the wire, its receiver not answering
            assert time.monotonic() < deadline, "no delivery was attempted"
            await asyncio.sleep(0.02)
        intake.kill()
        assert await asyncio.to_thread(intake.wait, 30) == -9

        receiver.mode = "ok"
        intake = await asyncio.to_thread(
            start_intake, tmp_path, kafka_bootstrap, port, "services.intake.app:create_app", **env
        )
        await until_received(receiver, 6, timeout=60)
    finally:
        intake.kill()
        await asyncio.to_thread(intake.wait)
        await receiver.stop()

    events = [verified(r, hook["secret"]) for r in receiver.received]
    for request_id in requests:
        assert [e["type"] for e in events if e["subject"] == request_id] == [
            "service_request.received",
            "service_request.cancelled",
        ]
