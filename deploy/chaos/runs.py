"""The fault runs and the two profiles: `short` (one run, in `make test`) and `full` (make chaos)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from deploy.chaos.fuzz import FuzzReport, fuzz
from deploy.chaos.invariants import RunReport, TopicLedger, check
from deploy.chaos.load import Load, replay
from deploy.chaos.system import System
from deploy.chaos.topics import Injected, inject_duplicates, inject_poison
from shared.contracts.topics import DOMAIN_TOPICS, INTAKE

Fault = Callable[[System, Load, "Chaos"], Awaitable[str]]


@dataclass
class Chaos:
    """One system under test and what has been done to it so far."""

    system: System
    injected: Injected = field(default_factory=Injected)
    ledger: TopicLedger = field(default_factory=TopicLedger)
    known_requests: list[str] = field(default_factory=list)
    reports: list[RunReport] = field(default_factory=list)
    log: Callable[[str], None] = print

    async def seed(self, requests: int = 6) -> None:
        """What every run builds on: a service center with technicians for the load's region and product line
        (so that jobs are auto-assigned), a warranty policy, and a few requests complaints already knows."""
        s = self.system
        admin = {"Authorization": f"Bearer {s.token('admin')}"}
        async with httpx.AsyncClient(headers=admin, timeout=30) as client:
            dispatch, warranty, intake = (s.services[n].url for n in ("dispatch", "warranty", "intake"))
            await _created(
                client.post(
                    f"{dispatch}/v1/service-centers",
                    json={"id": "C-north", "name": "North", "region": "north", "kind": "repair_center"},
                )
            )
            for i in range(3):
                await _created(
                    client.post(
                        f"{dispatch}/v1/technicians",
                        json={"id": f"T{i}", "center_id": "C-north", "name": f"Tech {i}", "skills": ["mower"]},
                    )
                )
            await _created(
                client.post(f"{warranty}/v1/warranty-policies", json={"product_line": "mower", "months": 24})
            )
            for i in range(requests):
                response = await _created(
                    client.post(
                        f"{intake}/v1/service-requests",
                        json={
                            "channel": "hotline",
                            "customer": {"name": f"Seed {i}", "phone": "+100200", "region": "north"},
                            "product": {
                                "serial": f"SEED-{i}-{random.randrange(10**9)}",
                                "model": "M-1",
                                "product_line": "mower",
                            },
                            "symptom": "noise",
                        },
                    )
                )
                self.known_requests.append(response.json()["id"])
        left = await s.wait_quiet(timeout=90)
        if left:
            raise RuntimeError(f"the seeded system did not settle: {left}")

    async def run(
        self, name: str, fault: Fault, *, cases: int, seconds: float, concurrency: int = 4, replays: int = 8
    ) -> RunReport:
        started = time.monotonic()
        load = Load(
            self.system, name, cases, concurrency=concurrency, seconds=seconds, known_requests=self.known_requests
        )
        poison_before = set(self.injected.poison)
        task = asyncio.create_task(load.run_all())
        try:
            description = await fault(self.system, load, self)
        finally:
            await task
        candidates = [c for c in load.commands if c.key and c.acknowledged and not c.retried_after_failure]
        sample = random.Random(name).sample(candidates, min(replays, len(candidates)))
        await replay(self.system, sample)
        poisoned = {k: v for k, v in self.injected.poison.items() if k not in poison_before}
        report = RunReport(name, description)
        await check(
            self.system,
            report,
            load.commands,
            load.field_requests,
            self.injected,
            poisoned,
            self.ledger,
            sample,
            load.killed,
        )
        report.seconds = time.monotonic() - started
        self.reports.append(report)
        self.log(
            f"{name}: {report.sent} sent, {report.acknowledged} acknowledged, {report.seconds:.0f}s, "
            f"{'ok' if report.ok else 'BROKEN: ' + ' | '.join(report.failures())}"
        )
        return report


async def _created(call: Awaitable[httpx.Response]) -> httpx.Response:
    response = await call
    if response.status_code not in (200, 201):
        raise RuntimeError(f"seeding failed: {response.status_code} {response.text[:300]}")
    return response


# Faults ---------------------------------------------------------------------------------------------------


def broker_sigstop(seconds: float, at: int = 15) -> Fault:
    async def fault(system: System, load: Load, chaos: Chaos) -> str:
        await load.reached(at)
        system.broker.suspend()
        chaos.log(f"  broker stopped at {load.progress} answers")
        try:
            await asyncio.sleep(seconds)  # the fault's length, not a wait for a result
        finally:
            system.broker.resume()
        return f"broker SIGSTOP {seconds:.0f}s"

    return fault


def broker_kill9(down: float = 3.0, at: int = 15) -> Fault:
    async def fault(system: System, load: Load, chaos: Chaos) -> str:
        await load.reached(at)
        await asyncio.to_thread(system.broker.kill)
        chaos.log(f"  broker killed at {load.progress} answers")
        await asyncio.sleep(down)
        await asyncio.to_thread(system.broker.start)
        return f"broker kill -9, restarted after {down:.0f}s"

    return fault


def service_kill9(name: str, at: int = 20) -> Fault:
    async def fault(system: System, load: Load, chaos: Chaos) -> str:
        await load.reached(at)
        if load.sends_to(name):
            await load.busy_with(name)  # kill it with a command of the load inside, not between two
        in_flight, answered = load.in_flight(), load.progress
        load.killed.add(name)
        await asyncio.to_thread(system.services[name].restart)  # SIGKILL, then start on the same files
        chaos.log(f"  killed {name} at {answered} answers with {in_flight} commands in flight; restarted")
        return f"kill -9 {name} ({in_flight.get(name, 0)} of its commands in flight), restarted"

    return fault


def injection(duplicates: int = 10, at: int = 15) -> Fault:
    async def fault(system: System, load: Load, chaos: Chaos) -> str:
        await load.reached(at)
        await inject_duplicates(system.bootstrap, list(DOMAIN_TOPICS), duplicates, chaos.injected)
        await inject_poison(system.bootstrap, list(DOMAIN_TOPICS), chaos.injected)
        return f"{duplicates} duplicates and 2 poison records per topic"

    return fault


def combined_short() -> Fault:
    """The short profile's one run: broker SIGSTOP, then kill -9 of intake, then duplicates and poison."""

    async def fault(system: System, load: Load, chaos: Chaos) -> str:
        return "; ".join(
            [
                await broker_sigstop(4, at=10)(system, load, chaos),
                await service_kill9("intake", at=30)(system, load, chaos),
                await injection(duplicates=5, at=40)(system, load, chaos),
            ]
        )

    return fault


def leader_loss(at: int = 15, down: float = 10.0) -> Fault:
    """Kill -9 the node that leads most partitions of intake.events, keep it down a while, then bring it back."""

    async def fault(system: System, load: Load, chaos: Chaos) -> str:
        await load.reached(at)
        admin = AIOKafkaAdminClient(bootstrap_servers=system.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([INTAKE])
        finally:
            await admin.close()
        leaders = [p["leader"] for p in described[0]["partitions"]]
        victim = max(set(leaders), key=leaders.count)
        node = system.kafka_cluster.node(victim)
        await asyncio.to_thread(node.kill)
        await asyncio.sleep(down)
        await asyncio.to_thread(node.start)
        return (
            f"3-node cluster, RF 3, min ISR 2: kill -9 node {victim} (leads {leaders.count(victim)} of "
            f"{len(leaders)} intake.events partitions), back after {down:.0f}s"
        )

    return fault


# Profiles -------------------------------------------------------------------------------------------------


async def short_profile(log: Callable[[str], None] = print) -> list[RunReport]:
    with System() as system:
        chaos = Chaos(system, log=log)
        await chaos.seed()
        await chaos.run("short", combined_short(), cases=30, seconds=40)
        return chaos.reports


async def full_profile(
    log: Callable[[str], None] = print, cluster: bool = True, fuzz_examples: int = 5
) -> tuple[list[RunReport], FuzzReport | None]:
    """Every fault run on one single-broker system, then the fuzz stage on it; then the cluster run."""
    reports: list[RunReport] = []
    fuzzed = None
    with System() as system:
        chaos = Chaos(system, log=log)
        await chaos.seed()
        await chaos.run("sigstop", broker_sigstop(20), cases=60, seconds=90)
        await chaos.run("broker-kill", broker_kill9(), cases=60, seconds=90)
        for name in ("intake", "dispatch", "warranty", "complaints", "analytics"):
            await chaos.run(f"kill-{name}", service_kill9(name), cases=40, seconds=60)
        await chaos.run("inject", injection(), cases=40, seconds=60)
        reports += chaos.reports
        if fuzz_examples:
            log(f"fuzz stage: {fuzz_examples} examples per operation and mode")
            fuzzed = await asyncio.to_thread(fuzz, system, fuzz_examples)
    if cluster:
        with System(cluster=True) as system:
            chaos = Chaos(system, log=log)
            await chaos.seed()
            await chaos.run("leader-loss", leader_loss(), cases=60, seconds=90)
            reports += chaos.reports
    return reports, fuzzed
