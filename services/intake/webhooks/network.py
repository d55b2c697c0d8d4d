"""Name resolution for webhook targets, bounded in time (a slow DNS server must not hold a command or the
worker)."""

from __future__ import annotations

import asyncio
import socket

from services.intake.webhooks.url_policy import IPAddress, Target, literal_address
from shared.domain import RuleViolation


class Resolver:
    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses `host` stands for (a literal is itself); empty when it does not resolve."""
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), self.timeout
            )
        except (OSError, TimeoutError):
            return []
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = literal_address(str(sockaddr[0]).split("%", 1)[0])
            if address is not None and address not in found:
                found.append(address)
        return found


async def checked_addresses(target: Target, resolver: Resolver, policy) -> list[IPAddress]:
    """Resolve the target's host now and check every address (`url_policy.check_addresses`)."""
    from services.intake.webhooks.url_policy import check_addresses

    addresses = await resolver.resolve(target.host, target.port)
    if not addresses:
        raise RuleViolation(f"the host {target.host} does not resolve", field="url")
    return check_addresses(target, addresses, policy)
