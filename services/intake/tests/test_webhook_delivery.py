"""Delivering webhooks when receivers misbehave: down for a while, hanging, failing, redirecting, answering
10 MB; and rotating secrets, replaying, and switching off a subscription that keeps failing."""

from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from services.intake.tests.webhook_receiver import Receiver
from services.intake.tests.webhook_support import (
    dealer,
    open_for,
    subscribe,
    until_received,
    verified,
    webhook_intake,
)
from shared.clock import FixedClock, utcnow
from shared.contracts.topics import INTAKE
from shared.testing.app import eventually
from shared.testing.kafka import collect, headers_of, subject_is


async def deliveries(intake, hook_id: str, dealer_id: str | None = None) -> list[dict]:
    headers = intake.auth("dealer", dealer_id=dealer_id) if dealer_id else intake.auth("admin")
    answer = await intake.client.get(f"/v1/webhooks/{hook_id}/deliveries?limit=500", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_a_receiver_down_for_a_while_gets_every_delivery_after_it_comes_back_in_order_per_case(
    tmp_path, event_bus, receiver
):
    d1 = dealer()
    await receiver.stop()  # down, on a port it will come back on
    async with webhook_intake(tmp_path, event_bus, webhook_retry_schedule=",".join(["0.3"] * 200)) as intake:
        hook = await subscribe(intake, receiver.url, ["service_request.*"], dealer_id=d1)
        requests = [await open_for(intake, d1) for _ in range(3)]
        for request_id in requests:
            for step, body in (("escalate", {"reason": "second level"}), ("triage", {"mode": "carry_in"})):
                answer = await intake.client.post(
                    f"/v1/service-requests/{request_id}/{step}", json=body, headers=intake.agent
                )
                assert answer.status_code == 200, answer.text
        # Every case's first delivery has failed at least once, and nothing later of a case went first.
        waiting = await eventually(
            lambda: deliveries(intake, hook["id"], d1),
            until=lambda ds: len(ds) == 9 and sum(1 for d in ds if d["attempts"] >= 2 and d["last_error"]) >= 3,
        )
        tried = [d for d in waiting if d["log"]]
        assert {d["event_type"] for d in tried} == {"service_request.received"} and len(tried) == 3
        await receiver.start()
        await until_received(receiver, 9)
        log = await eventually(
            lambda: deliveries(intake, hook["id"], d1), until=lambda ds: {d["status"] for d in ds} == {"delivered"}
        )

    events = [verified(r, hook["secret"]) for r in receiver.received]
    assert len({e["id"] for e in events}) == len(events) == 9
    for request_id in requests:
        assert [e["type"] for e in events if e["subject"] == request_id] == [
            "service_request.received",
            "service_request.escalated",
            "service_request.triaged",
        ]
    assert {d["status"] for d in log} == {"delivered"}
    retried = [d for d in log if len(d["log"]) > 1]
    assert len(retried) >= 3
    assert all(a["error"] and a["status_code"] is None for d in retried for a in d["log"][:-1])
    assert all(d["log"][-1]["status_code"] == 204 for d in log)


async def test_receivers_that_hang_fail_redirect_or_answer_10_mb_do_not_stall_the_others(tmp_path, event_bus):
    d1 = dealer()
    modes = ("hang", "error", "redirect", "huge", "ok")
    receivers = {mode: Receiver(mode=mode) for mode in modes}
    for r in receivers.values():
        await r.start()
    try:
        async with webhook_intake(tmp_path, event_bus) as intake:
            hooks = {
                mode: await subscribe(intake, r.url, ["service_request.received"], dealer_id=d1)
                for mode, r in receivers.items()
            }
            for _ in range(3):
                await open_for(intake, d1)
            await until_received(receivers["ok"], 3, timeout=20)

            logs = {}
            for mode in ("hang", "error", "redirect", "huge"):
                logs[mode] = await eventually(
                    lambda m=mode: deliveries(intake, hooks[m]["id"], d1),
                    until=lambda ds: len(ds) == 3 and all(d["log"] for d in ds),
                )
    finally:
        for r in receivers.values():
            await r.stop()

    def attempts(mode):
        return [a for d in logs[mode] for a in d["log"]]

    assert all(a["error"].startswith("no answer within") for a in attempts("hang"))
    assert all(a["duration_ms"] < 3000 for a in attempts("hang"))
    assert all(a["status_code"] == 500 for a in attempts("error"))
    assert all(a["status_code"] == 307 and "redirect" in a["error"] for a in attempts("redirect"))
    assert {d["status"] for d in logs["huge"]} == {"delivered"}
    assert all(a["duration_ms"] < 3000 for a in attempts("huge"))
    assert {d["status"] for d in logs["error"] + logs["redirect"] + logs["hang"]} <= {"pending", "failed"}


async def test_a_hanging_receiver_holds_at_most_half_of_the_workers_slots(tmp_path, event_bus):
    d1 = dealer()
    hanging, healthy = Receiver(mode="hang"), Receiver()
    await hanging.start()
    await healthy.start()
    try:
        async with webhook_intake(tmp_path, event_bus, webhook_concurrency=2) as intake:
            await subscribe(intake, hanging.url, ["service_request.received"], dealer_id=d1)
            await subscribe(intake, healthy.url, ["service_request.received"], dealer_id=d1)
            for _ in range(4):
                await open_for(intake, d1)
            await until_received(healthy, 4)
            assert hanging.requests >= 1
    finally:
        await hanging.stop()
        await healthy.stop()
    assert hanging.most_hanging == 1


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_grace_period_then_alone(
    tmp_path, event_bus, receiver
):
    d1 = dealer()
    clock = FixedClock(utcnow())
    async with webhook_intake(tmp_path, event_bus, clock=clock, webhook_secret_grace_seconds=3600) as intake:
        hook = await subscribe(intake, receiver.url, ["service_request.received"], dealer_id=d1)
        own = intake.auth("dealer", dealer_id=d1)
        await open_for(intake, d1)
        await until_received(receiver, 1)

        rotated = await intake.client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=own)
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != hook["secret"]
        await open_for(intake, d1)
        await until_received(receiver, 2)

        clock.advance(seconds=3601)
        await open_for(intake, d1)
        await until_received(receiver, 3)

        # A replay of the first delivery: the same webhook-id, signed with the secret of now.
        first = next(
            d
            for d in await deliveries(intake, hook["id"], d1)
            if d["event_id"] == receiver.received[0].headers["webhook-id"]
        )
        replay = await intake.client.post(f"/v1/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver", headers=own)
        assert replay.status_code == 202, replay.text
        await until_received(receiver, 4)

    before, during, after, replayed = receiver.received
    assert verified(before, hook["secret"])
    with pytest.raises(WebhookVerificationError):
        verified(before, new_secret)
    assert verified(during, hook["secret"]) == verified(during, new_secret)
    assert verified(after, new_secret)
    with pytest.raises(WebhookVerificationError):
        verified(after, hook["secret"])
    assert replayed.headers["webhook-id"] == before.headers["webhook-id"]
    assert verified(replayed, new_secret) == verified(before, hook["secret"])


async def test_a_subscription_every_delivery_to_which_fails_for_the_set_time_is_disabled_and_an_event_says_so(
    tmp_path, event_bus
):
    d1 = dealer()
    failing, healthy = Receiver(mode="error"), Receiver()
    await failing.start()
    await healthy.start()
    clock = FixedClock(utcnow())
    try:
        async with webhook_intake(
            tmp_path,
            event_bus,
            clock=clock,
            webhook_retry_schedule="100,100,100,100,100",
            webhook_disable_after_seconds=250,
        ) as intake:
            hook = await subscribe(intake, failing.url, ["service_request.received"], dealer_id=d1)
            own = intake.auth("dealer", dealer_id=d1)
            await open_for(intake, d1)
            for attempts in (1, 2, 3):
                await eventually(
                    lambda: deliveries(intake, hook["id"], d1),
                    until=lambda ds, n=attempts: len(ds) == 1 and ds[0]["attempts"] == n,
                )
                shown = (await intake.client.get(f"/v1/webhooks/{hook['id']}", headers=own)).json()
                assert shown["status"] == "active"
                clock.advance(seconds=101)
            await eventually(lambda: deliveries(intake, hook["id"], d1), until=lambda ds: ds[0]["attempts"] == 4)
            shown = await eventually(
                lambda: intake.client.get(f"/v1/webhooks/{hook['id']}", headers=own),
                until=lambda answer: answer.json()["status"] == "disabled",
            )
            assert shown.json()["disabled_at"] is not None
            records = await collect(event_bus, INTAKE, subject_is(hook["id"]), expected=2)

            # Once disabled, nothing more is queued or tried for it, however time moves; a replay is refused.
            requests_before = failing.requests
            clock.advance(seconds=1000)
            witness = await subscribe(intake, healthy.url, ["service_request.received"], dealer_id=d1)
            later = await open_for(intake, d1)
            await until_received(healthy, 1, lambda e: e["subject"] == later)
            assert len(await deliveries(intake, hook["id"], d1)) == 1
            only = (await deliveries(intake, hook["id"], d1))[0]
            replay = await intake.client.post(
                f"/v1/webhooks/{hook['id']}/deliveries/{only['id']}/redeliver", headers=own
            )
            assert replay.status_code == 409
            assert witness["id"] != hook["id"]
    finally:
        await failing.stop()
        await healthy.stop()
    assert [headers_of(r)["ce_type"] for r in records] == ["webhook.subscribed", "webhook.disabled"]
    disabled = json.loads(records[1].value)
    assert disabled["dealer_id"] == d1 and disabled["reason"].startswith("every delivery attempt failed")
    assert failing.requests == requests_before
