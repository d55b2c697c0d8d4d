"""Bounded load from a client, as partners and the hotline send it: open a request, triage it, and for field
work follow its job through accept, arrive, complete and the revisit; open complaints and register sales on
the side. Every command is recorded with its Idempotency-Key, body and final answer. A client that loses its
connection retries the same key and body until the service answers or the command's deadline passes."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from deploy.chaos.system import System

# What each acknowledged command must have stored: (service, event type).
STORED_AS = {
    "open_request": ("intake", "service_request.received"),
    "triage": ("intake", "service_request.triaged"),
    "complaint": ("complaints", "complaint.opened"),
    "product": ("warranty", "product.registered"),
    "accept": ("dispatch", "job.accepted"),
    "arrive": ("dispatch", "job.arrived"),
    "complete": ("dispatch", "job.completed"),
    "revisit": ("dispatch", "revisit.done"),
}
REGION, PRODUCT_LINE = "north", "mower"


@dataclass
class Command:
    run: str
    kind: str
    service: str
    path: str
    body: dict[str, Any]
    key: str | None
    token: str
    stream: str | None = None  # the aggregate the stored event belongs to, once known
    attempts: int = 0
    transport_errors: int = 0
    status: int | None = None
    response: Any = None
    replay_status: int | None = None
    replay_response: Any = None

    @property
    def acknowledged(self) -> bool:
        return self.status in (200, 201)

    @property
    def retried_after_failure(self) -> bool:
        return self.transport_errors > 0


@dataclass
class Load:
    """`cases` chains with `concurrency` workers, bounded by `seconds` of wall time."""

    system: System
    run: str
    cases: int
    concurrency: int = 4
    seconds: float = 60.0
    field_ratio: float = 0.7
    job_wait: float = 6.0
    command_deadline: float = 45.0
    known_requests: list[str] = field(default_factory=list)  # requests complaints already knows
    commands: list[Command] = field(default_factory=list)
    field_requests: list[str] = field(default_factory=list)
    progress: int = 0
    killed: set[str] = field(default_factory=set)  # services killed -9 during this load
    _rng: random.Random = field(default_factory=lambda: random.Random(13))

    def __post_init__(self) -> None:
        s = self.system
        self.tokens = {
            "admin": s.token("admin"),
            "agent": s.token("agent"),
            "dealer:D1": s.token("dealer", dealer_id="D1"),
            "dealer:D2": s.token("dealer", dealer_id="D2"),
            "warranty": s.token("warranty_officer"),
            "complaints": s.token("complaints_officer"),
        }
        self._progressed = asyncio.Event()

    async def run_all(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(self.cases):
                queue.put_nowait(i)
            deadline = time.monotonic() + self.seconds

            async def worker() -> None:
                while time.monotonic() < deadline:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await self._case(client, i, deadline)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    @staticmethod
    def sends_to(service: str) -> bool:
        """Whether the load sends commands to `service` (analytics only consumes)."""
        return any(s == service for s, _ in STORED_AS.values())

    def in_flight(self) -> dict[str, int]:
        """Commands sent and not yet answered, per service."""
        out: dict[str, int] = {}
        for command in self.commands:
            if command.status is None:
                out[command.service] = out.get(command.service, 0) + 1
        return out

    async def busy_with(self, service: str, timeout: float = 10) -> bool:
        """Until a command to `service` is in flight (polled every few milliseconds, bounded)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if self.in_flight().get(service):
                return True
            await asyncio.sleep(0.003)
        return False

    async def reached(self, commands: int, timeout: float = 60) -> None:
        """Until `commands` commands have been answered (faults start mid-load, not before it)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.progress < commands and loop.time() < end:
            self._progressed.clear()
            try:
                await asyncio.wait_for(self._progressed.wait(), max(0.01, end - loop.time()))
            except TimeoutError:
                break

    # One chain -----------------------------------------------------------------------------------------

    async def _case(self, client: httpx.AsyncClient, i: int, deadline: float) -> None:
        dealer = (None, "D1", "D2")[i % 3]
        opener = "agent" if dealer is None else f"dealer:{dealer}"
        serial = f"CH-{self.run}-{uuid.uuid4().hex[:10]}"
        opened = await self._send(
            client,
            "open_request",
            "intake",
            "/v1/service-requests",
            opener,
            {
                "channel": "hotline" if dealer is None else "dealer",
                "customer": {"name": f"Customer {i}", "phone": "+10000000", "region": REGION},
                "product": {"serial": serial, "model": "M-1", "product_line": PRODUCT_LINE},
                "symptom": "does not start",
                # Bought today: within warranty, so field work is dispatched (not held for a paid-service quote).
                "purchase_date": date.today().isoformat(),
                "customer_tier": "standard",
                "urgent": i % 5 == 0,
            },
        )
        if i % 3 == 1:
            await self._send(
                client,
                "product",
                "warranty",
                "/v1/products",
                "warranty",
                {
                    "serial": f"P-{serial}",
                    "model": "M-1",
                    "product_line": PRODUCT_LINE,
                    "sold_on": date.today().isoformat(),
                    "dealer_id": dealer,
                },
                stream=f"P-{serial}",
            )
        if i % 3 == 2 and self.known_requests:
            await self._send(
                client,
                "complaint",
                "complaints",
                "/v1/complaints",
                "complaints",
                {
                    "request_id": self._rng.choice(self.known_requests),
                    "channel": "hotline",
                    "category": "delay",
                    "severity": "general",
                    "description": f"chaos {self.run} {i}",
                },
            )
        if not opened.acknowledged:
            return
        request_id = opened.response["id"]
        field_work = self._rng.random() < self.field_ratio
        triage = await self._send(
            client,
            "triage",
            "intake",
            f"/v1/service-requests/{request_id}/triage",
            "admin",
            {"mode": "onsite" if field_work else "phone"},
            stream=request_id,
            keyed=False,
        )
        if not triage.acknowledged or not field_work:
            return
        self.field_requests.append(request_id)
        job = await self._job_of(client, request_id, min(deadline, time.monotonic() + self.job_wait))
        if job is None or job.get("technician_id") is None:
            return
        job_id = job["id"]
        for step, body in (("accept", {}), ("arrive", {}), ("complete", {"fixed": True, "resolution": "fixed"})):
            sent = await self._send(client, step, "dispatch", f"/v1/jobs/{job_id}/{step}", "admin", body, stream=job_id)
            if not sent.acknowledged:
                return
        await self._send(
            client,
            "revisit",
            "dispatch",
            f"/v1/jobs/{job_id}/revisit",
            "admin",
            {"satisfaction": self._rng.randint(1, 5), "nps": self._rng.randint(0, 10), "channel": "phone"},
            stream=job_id,
        )

    async def _job_of(self, client: httpx.AsyncClient, request_id: str, until: float) -> dict | None:
        """The request's job once dispatch created and assigned it (polled until `until`)."""
        url = f"{self.system.services['dispatch'].url}/v1/jobs"
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"}
        while time.monotonic() < until:
            try:
                response = await client.get(url, params={"request_id": request_id}, headers=headers)
                items = response.json().get("items", []) if response.status_code == 200 else []
                if items and items[0].get("technician_id"):
                    return items[0]
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.2)
        return None

    async def _send(
        self,
        client: httpx.AsyncClient,
        kind: str,
        service: str,
        path: str,
        token: str,
        body: dict[str, Any],
        *,
        stream: str | None = None,
        keyed: bool = True,
    ) -> Command:
        command = Command(
            self.run, kind, service, path, body, str(uuid.uuid4()) if keyed else None, self.tokens[token], stream=stream
        )
        self.commands.append(command)
        await send(client, self.system, command, self.command_deadline)
        if command.acknowledged and command.stream is None and isinstance(command.response, dict):
            command.stream = command.response.get("id")
        self.progress += 1
        self._progressed.set()
        return command


async def send(client: httpx.AsyncClient, system: System, command: Command, deadline_s: float) -> None:
    """POST the command; on a lost connection or a 5xx, retry the same key and body (a 409 'still being
    processed' is retried for a few seconds, as a request really still running ends by then)."""
    headers = {"Authorization": f"Bearer {command.token}"}
    if command.key:
        headers["Idempotency-Key"] = command.key
    deadline = time.monotonic() + deadline_s
    in_use_until: float | None = None
    while True:
        command.attempts += 1
        try:
            response = await client.post(
                f"{system.services[command.service].url}{command.path}", json=command.body, headers=headers
            )
        except httpx.TransportError:
            command.transport_errors += 1
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.3)
            continue
        command.status = response.status_code
        try:
            command.response = response.json()
        except ValueError:
            command.response = response.text
        retry = response.status_code >= 500
        if response.status_code == 409 and command.transport_errors and "in-use" in str(command.response):
            in_use_until = in_use_until or time.monotonic() + 3
            retry = time.monotonic() < in_use_until
        if not retry or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.3)


async def replay(system: System, commands: list[Command]) -> None:
    """Send each keyed command again with the same key and body; its answer must be the first one."""
    async with httpx.AsyncClient(timeout=10) as client:
        for command in commands:
            headers = {"Authorization": f"Bearer {command.token}", "Idempotency-Key": command.key}
            response = await client.post(
                f"{system.services[command.service].url}{command.path}", json=command.body, headers=headers
            )
            command.replay_status = response.status_code
            try:
                command.replay_response = response.json()
            except ValueError:
                command.replay_response = response.text
