"""dispatch's consumer path alone, without a broker, HTTP or relay: `received` + `triaged` records of many
requests go straight into `IdempotentConsumer.handle_records` (500 per call, as one poll hands them over) of
dispatch's own handler table, over a SQLite file with synchronous=FULL and 20 technicians in the requests'
region. Prints assignments per second and the process's CPU per assignment, and checks that every request got
its assigned job. Run by `python -m deploy.bench.dispatch_lag --in-process`, once per tree (`--before`)."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def run_in_process(requests: int, warmup: int = 300) -> None:
    """In the checkout whose code is first on sys.path (the parent starts this with cwd = that tree)."""
    from aiokafka.structs import ConsumerRecord
    from sqlalchemy import func, select

    from deploy.bench.payloads import CUSTOMER, MODEL, received_event
    from services.dispatch.application import COMMANDS
    from services.dispatch.commands import RegisterServiceCenter, RegisterTechnician
    from services.dispatch.reactions import REACTIONS, sla_deadline_passed
    from services.dispatch.read_model import PROJECTIONS, dispatch_jobs, metadata
    from services.dispatch.sla import SlaPolicy
    from shared.auth import Actor, Principal, Role
    from shared.clock import SystemClock
    from shared.contracts.dispatch import CenterKind
    from shared.contracts.enums import Priority, ServiceMode
    from shared.contracts.intake import ServiceRequestTriaged
    from shared.domain import TimeRules
    from shared.eventstore.database import Database
    from shared.eventstore.store import EventStore, new_metadata
    from shared.eventstore.tables import service_schema
    from shared.kernel import Application, Kernel
    from shared.messaging.cloudevents import to_record
    from shared.messaging.consumer import IdempotentConsumer
    from shared.settings import ServiceSettings
    from shared.testing.kafka import envelope_for

    def records(count: int, first_offset: int) -> list[Any]:
        """`count` requests' received + triaged, spread over 3 partitions by request as Kafka would key them;
        returned grouped per partition, in order."""
        by_partition: dict[int, list[Any]] = {0: [], 1: [], 2: []}
        for i in range(count):
            received = received_event(f"SN-INPROC-{uuid.uuid4().hex[:12]}")
            triaged = ServiceRequestTriaged(
                request_id=received.request_id, mode=ServiceMode.onsite, priority=Priority.P3, note=None
            )
            partition = i % 3
            for data, sequence in ((received, 1), (triaged, 2)):
                topic, key, value, headers = to_record(envelope_for(data, source="intake", sequence=sequence))
                offset = first_offset + len(by_partition[partition])
                by_partition[partition].append(
                    ConsumerRecord(topic, partition, offset, 0, 0, key, value, None, len(key), len(value), headers)
                )
        return [r for records in by_partition.values() for r in records]

    async def feed(consumer: IdempotentConsumer, batch: list[Any]) -> None:
        by_partition: dict[int, list[Any]] = {}
        for record in batch:
            by_partition.setdefault(record.partition, []).append(record)
        for records_of_one in by_partition.values():
            for at in range(0, len(records_of_one), 500):
                await consumer.handle_records(records_of_one[at : at + 500])

    async def main() -> None:
        workdir = Path(tempfile.mkdtemp(prefix="servicetrail-dispatch-in-process-"))
        try:
            url = f"sqlite+aiosqlite:///{workdir / 'dispatch.db'}"
            db = Database(url)
            await db.create_all(service_schema(metadata))
            settings = ServiceSettings(service_name="dispatch", database_url=url, auth_secret="x" * 40)
            application = Application(
                Kernel(
                    db=db,
                    store=EventStore("dispatch"),
                    clock=SystemClock(),
                    time_rules=TimeRules.from_settings(settings),
                    projections=PROJECTIONS,
                    commands=COMMANDS,
                    reactions=REACTIONS,
                    provided={SlaPolicy: SlaPolicy()},
                    on_deadline=sla_deadline_passed,
                )
            )
            actor = Actor.of(Principal(subject="bench", roles=frozenset({Role.dispatcher})))
            await application.handle(
                RegisterServiceCenter("BENCH-C1", "Bench center", CUSTOMER["region"], CenterKind.repair_center),
                actor,
                new_metadata(),
            )
            for i in range(20):
                command = RegisterTechnician(f"BENCH-T{i:03d}", "BENCH-C1", f"Technician {i}", [MODEL["product_line"]])
                await application.handle(command, actor, new_metadata())
            try:  # as `python -m services.dispatch` does once it has started (a tree from before it: nothing)
                from services.dispatch.app import tune_garbage_collection
            except ImportError:
                pass
            else:
                tune_garbage_collection()
            consumer = IdempotentConsumer(
                db=db,
                name="dispatch",
                topics=["intake.events"],
                handlers=application.handler_table(),
                consumer_factory=lambda: None,  # type: ignore[arg-type, return-value]
                producer_factory=lambda: None,  # type: ignore[arg-type, return-value]
            )
            await feed(consumer, records(warmup, 0))
            measured = records(requests, 10 * warmup)
            cpu, loop_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
            await feed(consumer, measured)
            cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
            wall = time.perf_counter() - wall
            async with db.read() as conn:
                assigned = (
                    await conn.execute(
                        select(func.count()).select_from(dispatch_jobs).where(dispatch_jobs.c.technician_id.isnot(None))
                    )
                ).scalar_one()
            await db.dispose()
            if assigned != warmup + requests or consumer.counts.get("dlq"):
                raise SystemExit(f"{assigned} jobs assigned of {warmup + requests}; counts {consumer.counts}")
            print(
                f"{requests} requests: {requests / wall:6.0f} assignments/s wall, CPU {cpu / requests * 1000:.2f} ms "
                f"per assignment (the whole process; two events each; {loop_cpu / requests * 1000:.2f} ms of it on "
                "the event loop's thread, the rest on SQLite's)",
                flush=True,
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    import uvloop

    uvloop.run(main())


def compare(before: Path | None, root: Path, requests: int, label: str, repeat: int = 1) -> None:
    """This module's `run_in_process`, in a process per tree and run, `before` (when given) first, `repeat`
    times in turn (on a shared machine the load moves between runs: alternating and taking medians keeps the
    pair comparable); with several runs, the medians of each tree at the end."""
    import re
    import statistics
    import subprocess
    import sys

    trees = [(f"before ({label})", before)] if before is not None else []
    trees.append(("now", root))
    measured: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in trees}
    for _ in range(repeat):
        for name, tree in trees:
            print(f"{name:>18}: ", end="", flush=True)
            code = f"import runpy; runpy.run_path({__file__!r}, run_name='child')['run_in_process']({requests})"
            out = subprocess.run([sys.executable, "-c", code], cwd=tree, check=True, capture_output=True, text=True)
            print(out.stdout.strip(), flush=True)
            found = re.search(r"([\d.]+) assignments/s wall, CPU ([\d.]+) ms .*?; ([\d.]+) ms of it", out.stdout)
            if found:
                rate, cpu, loop = (float(x) for x in found.groups())
                measured[name].append((rate, cpu, loop))
    if repeat > 1:
        print(f"medians of {repeat} runs each, alternating:")
        for name, runs in measured.items():
            if runs:
                rate, cpu, loop = (statistics.median(run[i] for run in runs) for i in range(3))
                cpus = " / ".join(f"{run[1]:.2f}" for run in runs)
                print(
                    f"{name:>18}: {rate:6.0f} assignments/s wall, CPU {cpu:.2f} ms per assignment ({loop:.2f} ms on "
                    f"the event loop's thread); CPU per run {cpus} ms, least {min(run[1] for run in runs):.2f} ms "
                    f"(the run the other load disturbed least), most assignments/s {max(run[0] for run in runs):.0f}"
                )


__all__ = ["compare", "run_in_process"]
