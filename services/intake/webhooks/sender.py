"""One delivery attempt: check the target again (after resolving its host now), connect to the very address
that was checked, POST the signed CloudEvent, and judge the answer. Never follows a redirect, reads at most a
small prefix of the answer, and gives up after the timeout, whatever the receiver does."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from services.intake.webhooks.network import Resolver, checked_addresses
from services.intake.webhooks.settings import WebhookSettings
from services.intake.webhooks.url_policy import IPAddress, Target, check_url, literal_address
from shared.domain import RuleViolation

CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def signature(secrets: list[str], event_id: str, timestamp: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<base64 HMAC-SHA256>` per live secret, space separated (Standard Webhooks;
    receivers accept any that verifies, which is how a rotation's grace period works)."""
    return " ".join(Webhook(secret).sign(event_id, timestamp, body) for secret in secrets)


def signed_headers(secrets: list[str], event_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "content-type": CONTENT_TYPE,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature(secrets, event_id, timestamp, body),
        "user-agent": "Servicetrail-Webhooks/1",
    }


def _pinned(target: Target, address: IPAddress) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL naming the checked address, Host header, httpx extensions): the connection goes to `address`,
    while the receiver still sees its host name (Host header, and TLS SNI + certificate check on it)."""
    literal = f"[{address}]" if address.version == 6 else str(address)
    default_port = 443 if target.scheme == "https" else 80
    shown = f"[{target.host}]" if literal_address(target.host) and ":" in target.host else target.host
    host_header = shown if target.port == default_port else f"{shown}:{target.port}"
    extensions: dict[str, str] = {}
    if target.scheme == "https" and literal_address(target.host) is None:
        extensions["sni_hostname"] = target.host
    return f"{target.scheme}://{literal}:{target.port}{target.path}", {"host": host_header}, extensions


def _judged(status_code: int | None, error: str | None, started: float) -> Outcome:
    if error is None and status_code is not None and not 200 <= status_code < 300:
        error = f"answered {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
    return Outcome(error is None, status_code, error, int((time.monotonic() - started) * 1000))


def _receivers_tls(ca_bundle: str | None) -> ssl.SSLContext:
    """The TLS context receivers' certificates are checked with: WEBHOOK_CA_BUNDLE's CAs, or those httpx checks
    against by default (certifi's). One per bundle file as it is on disk, kept: loading the CAs takes tens of
    milliseconds and one context serves any number of clients."""
    stat = os.stat(ca_bundle) if ca_bundle else None
    return _tls_context(ca_bundle, (stat.st_mtime_ns, stat.st_size) if stat else None)


@functools.lru_cache(maxsize=8)
def _tls_context(ca_bundle: str | None, _version: tuple[int, int] | None) -> ssl.SSLContext:
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return httpx.create_ssl_context(trust_env=False)


class Sender:
    def __init__(self, settings: WebhookSettings, resolver: Resolver) -> None:
        self.settings = settings
        self.resolver = resolver
        # No pooled connections (a pooled TLS connection to an address is bound to the SNI it was opened
        # with), no redirects, no proxies from the environment. Certificates are checked against the system's
        # CAs, or WEBHOOK_CA_BUNDLE's.
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            verify=_receivers_tls(settings.ca_bundle),
            timeout=httpx.Timeout(settings.timeout_seconds),
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, url: str, event_id: str, body: str, secrets: list[str]) -> Outcome:
        """One attempt, within the timeout all told (resolution, connection, answer): the host is resolved
        now and every address checked; the checked addresses are tried in turn until one connects."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                try:
                    target = check_url(url, self.settings.policy)
                    addresses = await checked_addresses(target, self.resolver, self.settings.policy)
                except RuleViolation as exc:
                    return _judged(None, f"refused: {exc.detail}", started)
                # The wall clock, not the service's: receivers check the timestamp against their own clocks.
                headers = signed_headers(secrets, event_id, datetime.now(UTC), body)
                error = "no address"
                for address in addresses:
                    try:
                        return _judged(await self._post(target, address, headers, body), None, started)
                    except httpx.ConnectError as exc:  # this address does not answer: the next checked one
                        error = f"ConnectError: {exc}"
                return _judged(None, error[:500], started)
        except TimeoutError:
            return _judged(None, f"no answer within {self.settings.timeout_seconds:g} s", started)
        except httpx.HTTPError as exc:
            return _judged(None, f"{type(exc).__name__}: {exc}"[:500], started)

    async def _post(self, target: Target, address: IPAddress, headers: dict[str, str], body: str) -> int:
        """POST to `address`; the answer's status, having read at most `max_response_bytes` of its body."""
        pinned_url, host, extensions = _pinned(target, address)
        async with self.client.stream(
            "POST", pinned_url, content=body.encode(), headers={**headers, **host}, extensions=extensions
        ) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= self.settings.max_response_bytes:
                    break  # the rest of a big answer is never read
            return response.status_code
