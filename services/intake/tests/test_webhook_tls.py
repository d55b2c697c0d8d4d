"""https deliveries go to the address intake checked, while the receiver's certificate is still verified
against its host name (TLS SNI and hostname check on the name, the connection pinned to the address)."""

from __future__ import annotations

import ssl
import subprocess

from services.intake.tests.webhook_receiver import Receiver
from services.intake.tests.webhook_support import dealer, open_for, subscribe, until_received, verified, webhook_intake
from shared.testing.app import eventually


def certificate(tmp_path, name: str) -> tuple[str, str]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    # An EC P-256 key: made in a millisecond, where an RSA 2048 one takes ~0.2 s of CPU (TLS verifies either alike).
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", key, "-out", cert, "-days", "1"]
        + ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def serving(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def test_an_https_receiver_is_reached_by_name_on_the_checked_address_and_its_certificate_verified(
    tmp_path, event_bus
):
    d1 = dealer()
    good_cert, good_key = certificate(tmp_path, "localhost")
    bad_cert, bad_key = certificate(tmp_path, "elsewhere.example")
    bundle = tmp_path / "cas.pem"
    bundle.write_text(open(good_cert).read() + open(bad_cert).read())
    good = Receiver(tls=serving(good_cert, good_key), host="localhost")
    impostor = Receiver(tls=serving(bad_cert, bad_key), host="localhost")
    await good.start()
    await impostor.start()
    try:
        async with webhook_intake(
            tmp_path,
            event_bus,
            webhook_allowed_hosts="localhost",
            webhook_allow_http_for_allowed_hosts=False,
            webhook_ca_bundle=str(bundle),
        ) as intake:
            hook = await subscribe(intake, good.url, ["service_request.received"], dealer_id=d1)
            wrong = await subscribe(intake, impostor.url, ["service_request.received"], dealer_id=d1)
            request_id = await open_for(intake, d1)
            await until_received(good, 1)
            refused = await eventually(
                lambda: intake.client.get(f"/v1/webhooks/{wrong['id']}/deliveries", headers=intake.auth("admin")),
                until=lambda answer: any(d["log"] for d in answer.json()["items"]),
            )
    finally:
        await good.stop()
        await impostor.stop()
    event = verified(good.received[0], hook["secret"])
    assert event["subject"] == request_id
    assert good.received[0].headers["host"] == f"localhost:{good.port}"
    attempt = refused.json()["items"][0]["log"][0]
    assert attempt["status_code"] is None and "CERTIFICATE_VERIFY_FAILED" in attempt["error"]
    assert impostor.received == []
