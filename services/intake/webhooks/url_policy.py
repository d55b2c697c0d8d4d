"""Where intake may send a webhook (SSRF defence), as pure rules: only `https`, and only to public addresses,
unless the host is listed in `WEBHOOK_ALLOWED_HOSTS`. The same rules run when subscribing and at every
delivery, on the addresses the host resolves to then (the worker connects to the very address it checked)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.domain import RuleViolation

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2000


@dataclass(frozen=True)
class UrlPolicy:
    allowed_hosts: frozenset[str] = frozenset()
    # Tests run a plain-HTTP receiver on loopback: http is then accepted, for allowed hosts only.
    allow_http_for_allowed_hosts: bool = False

    @classmethod
    def of(cls, allowed_hosts: str, allow_http_for_allowed_hosts: bool = False) -> UrlPolicy:
        hosts = frozenset(h.strip().lower().strip("[]") for h in allowed_hosts.split(",") if h.strip())
        return cls(hosts, allow_http_for_allowed_hosts)

    def allows_host(self, host: str) -> bool:
        return host.lower() in self.allowed_hosts


@dataclass(frozen=True)
class Target:
    """A checked URL taken apart: what the worker resolves and connects to."""

    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line


def _refuse(reason: str) -> RuleViolation:
    return RuleViolation(reason, field="url")


def check_url(url: str, policy: UrlPolicy) -> Target:
    """The URL's parts, or a 422 naming `url`: not https (unless allowed), no host, credentials in it."""
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"the url may be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"the url is not a valid URL ({exc})") from exc
    host = (parts.hostname or "").lower()
    if not host:
        raise _refuse("the url has no host")
    if not host.isascii():
        raise _refuse("write an internationalized host name in its IDNA form (xn--…)")
    if parts.username is not None or parts.password is not None:
        raise _refuse("the url may not carry credentials")
    if parts.fragment:
        raise _refuse("the url may not have a fragment")
    scheme = parts.scheme.lower()
    if scheme != "https" and not (
        scheme == "http" and policy.allow_http_for_allowed_hosts and policy.allows_host(host)
    ):
        raise _refuse("only https URLs can receive webhooks")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, scheme, host, port or (443 if scheme == "https" else 80), path)


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The IPv4 addresses an IPv6 address stands for (mapped, 6to4, Teredo): checked as well."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[IPAddress] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def refusal(address: IPAddress) -> str | None:
    """Why `address` may not receive webhooks, or None for a public unicast address."""
    for candidate in [address, *_embedded(address)]:
        for flag, what in (
            ("is_unspecified", "unspecified"),
            ("is_loopback", "loopback"),
            ("is_link_local", "link-local"),
            ("is_multicast", "multicast"),
            ("is_private", "private"),
            ("is_reserved", "reserved"),
        ):
            if getattr(candidate, flag):
                return f"{candidate} is a {what} address"
        if not candidate.is_global:
            return f"{candidate} is not a public address"
    return None


def check_addresses(target: Target, addresses: Iterable[IPAddress], policy: UrlPolicy) -> list[IPAddress]:
    """The addresses the host resolved to, all of them public (or the host allowed); a 422 naming `url`
    otherwise. One private address among public ones refuses the lot: such a mix is how rebinding starts."""
    found = list(dict.fromkeys(addresses))
    if not found:
        raise _refuse(f"the host {target.host} does not resolve")
    if policy.allows_host(target.host):
        return found
    for address in found:
        reason = refusal(address)
        if reason is not None:
            raise _refuse(f"the url's host {target.host} resolves to a forbidden address: {reason}")
    return found
